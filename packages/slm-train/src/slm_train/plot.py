"""Loss curves as a PNG: a picture says more about a run than a column of numbers."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

from .files import write_bytes_atomically


def _new_figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(figure, path: str | os.PathLike) -> Path:
    """Write the figure as a PNG, atomically, without matplotlib's font-cache notices."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        figure.savefig(buffer, format="png", dpi=100)
    path = Path(path)
    write_bytes_atomically(path, buffer.getvalue())
    return path


def plot_losses(metrics: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Plot the training loss (every log line) and train/validation loss (every evaluation).

    Against steps and against tokens seen, side by side.
    """
    steps = [m for m in metrics if m.get("type") == "step"]
    evals = [m for m in metrics if m.get("type") == "eval" and "val_loss" in m]  # not RL's
    figure = _new_figure(11, 4.2)
    by_step, by_tokens = figure.subplots(1, 2, sharey=True)
    for axes, x in ((by_step, "step"), (by_tokens, "tokens")):
        if steps:
            axes.plot(
                [m[x] for m in steps],
                [m["loss"] for m in steps],
                color="tab:blue",
                alpha=0.35,
                linewidth=1,
                label="train (batch)",
            )
        if evals:
            axes.plot(
                [m[x] for m in evals],
                [m["train_loss"] for m in evals],
                "o-",
                color="tab:blue",
                label="train (eval)",
            )
            axes.plot(
                [m[x] for m in evals],
                [m["val_loss"] for m in evals],
                "o-",
                color="tab:orange",
                label="validation",
            )
        axes.set_xlabel(x if x == "step" else "tokens seen")
        axes.grid(alpha=0.3)
    by_step.set_ylabel("cross-entropy loss")
    by_step.legend()
    return _save(figure, path)


def plot_epochs(
    records: list[dict[str, Any]], path: str | os.PathLike, metrics: tuple[str, ...] = ("loss",)
) -> Path:
    """Per-epoch train/validation curves for fine-tuning, one panel per metric."""
    figure = _new_figure(5.5 * len(metrics), 4)
    panels = figure.subplots(1, len(metrics), squeeze=False)[0]
    epochs = [r["epoch"] for r in records]
    for axes, metric in zip(panels, metrics, strict=True):
        for split, colour in (("train", "tab:blue"), ("val", "tab:orange")):
            values = [r.get(f"{split}_{metric}") for r in records]
            if all(v is not None for v in values):
                label = "validation" if split == "val" else "train"
                axes.plot(epochs, values, "o-", color=colour, label=label)
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.grid(alpha=0.3)
        axes.legend()
    return _save(figure, path)
