"""Comparing runs: which settings differ, and what they did to the loss and the speed.

`compare_runs` reads each run's config.json and metrics.jsonl (nothing is
retrained or re-evaluated) and returns a `Comparison`: the settings that differ
between the runs, and for each run its size, best validation loss and
throughput. Optionally it draws the loss curves of all runs on one picture,
against tokens seen (which run learns more per token?) and against wall-clock
time (which run learns more per second?), and samples the same prompt from
each run.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from .chat_template import ChatTemplate
from .plot import _new_figure, _save
from .prompts import encode_prompt, reply_ends
from .run import Run
from .runtime import resolve_device

# Settings that always differ between runs, or repeat others, so tell nothing.
_IGNORED = {
    "train.out_dir",
    "train.model",
    "tokenizer.sha256",
    "data.dir",
    "format",
    "version",
    "checksum",
}


@dataclass(frozen=True)
class RunStats:
    """One run's line in a comparison."""

    path: Path
    name: str  # how tables and legends call the run (its folder name)
    kind: str
    parameters: int
    tokens: int | None  # training tokens seen (None: not trained here, e.g. imported)
    elapsed: float | None  # seconds of training, evaluation included
    best_val_loss: float | None
    best_step: int | None
    tokens_per_s: float | None  # median of the logged throughputs
    sample: str | None = None  # the prompt's continuation, when one was asked for


@dataclass(frozen=True)
class Comparison:
    runs: list[RunStats]
    differences: dict[str, list[Any]]  # setting -> its value in each run (None: not set)
    plot: Path | None = None
    prompt: str | None = None


def flat_settings(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """config.json as {"model.n_layer": 4, "train.learning_rate": 0.001, ...}."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if name in _IGNORED:
            continue
        if isinstance(value, dict):
            flat |= flat_settings(value, f"{name}.")
        else:
            flat[name] = value
    return flat


def config_differences(runs: Sequence[Run]) -> dict[str, list[Any]]:
    """The settings whose values are not the same in every run, in config.json's order."""
    settings = [flat_settings(run.config) for run in runs]
    names = list(dict.fromkeys(name for s in settings for name in s))
    values = {name: [s.get(name) for s in settings] for name in names}
    return {name: v for name, v in values.items() if any(x != v[0] for x in v)}


def run_stats(run: Run, name: str) -> RunStats:
    """Size, best validation loss and speed of a run, from its files.

    A run with no training metrics (one imported from Hugging Face, say) still
    has a size, settings and samples to compare; its training numbers are None.
    """
    metrics = run.metrics()
    steps = [m for m in metrics if m.get("type") == "step"]
    evals = [m for m in metrics if m.get("type") == "eval" and "val_loss" in m]
    best = min(evals, key=lambda m: m["val_loss"]) if evals else None
    speeds = [m["tokens_per_s"] for m in steps if "tokens_per_s" in m]
    last = max(steps + evals, key=lambda m: m.get("elapsed", 0.0), default=None)
    return RunStats(
        path=run.path,
        name=name,
        kind=run.config.get("kind", "pre-trained"),
        parameters=run.summary().parameters,
        tokens=max(m.get("tokens", 0) for m in steps + evals) if last else None,
        elapsed=last.get("elapsed", 0.0) if last else None,
        best_val_loss=best["val_loss"] if best else None,
        best_step=best["step"] if best else None,
        tokens_per_s=statistics.median(speeds) if speeds else None,
    )


def _names(runs: Sequence[Run]) -> list[str]:
    """Folder names, or longer paths where two runs share a folder name."""
    names = [run.path.name for run in runs]
    return [
        name if names.count(name) == 1 else str(run.path)
        for name, run in zip(names, runs, strict=True)
    ]


def sample_run(
    run: Run,
    prompt: str,
    max_new_tokens: int = 40,
    *,
    temperature: float = 0.8,
    top_k: int | None = 40,
    seed: int = 0,
    checkpoint: str = "best",
    device: str = "auto",
) -> str:
    """The run's continuation of `prompt` (in its prompt format), with a fixed seed."""
    from slm_model import generate

    if run.config.get("kind") == "classifier":
        return "(a classifier: it labels text, it does not write it)"
    tokenizer = run.tokenizer()
    model = run.load_model(checkpoint, resolve_device(device))
    prompt_format, template = run.config.get("prompt_format"), ChatTemplate.of(run.config)
    ids = encode_prompt(tokenizer, prompt_format, prompt, template=template)
    ends = reply_ends(tokenizer, prompt_format, template)
    if not ids:
        raise ValueError("the prompt is empty; give some text to continue")
    ids = ids[-model.config.block_size :]
    generator = torch.Generator(device=model.tok_emb.weight.device).manual_seed(seed)
    out = generate(
        model,
        ids,
        max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        eos_id=ends[0] if ends else None,
        generator=generator,
    )
    new = out[0, len(ids) :].tolist()
    ended = [new.index(end) for end in ends if end in new]
    return tokenizer.decode(new[: min(ended, default=len(new))])


def compare_runs(
    runs: Sequence[Run | str | os.PathLike],
    *,
    out: str | os.PathLike | None = None,
    prompt: str | None = None,
    max_new_tokens: int = 40,
    seed: int = 0,
    checkpoint: str = "best",
    device: str = "auto",
) -> Comparison:
    """Compare runs' settings, losses and speeds; with `out`, plot their curves there
    (when at least one run has training metrics).

    With `prompt`, each run continues it (same seed, temperature 0.8, top-k 40).
    """
    opened = [run if isinstance(run, Run) else Run(run) for run in runs]
    if len(opened) < 2:
        raise ValueError("compare needs at least two runs")
    names = _names(opened)
    stats = [run_stats(run, name) for run, name in zip(opened, names, strict=True)]
    sampling = dict(seed=seed, checkpoint=checkpoint, device=device)
    if prompt is not None:
        stats = [
            replace(s, sample=sample_run(run, prompt, max_new_tokens, **sampling))
            for run, s in zip(opened, stats, strict=True)
        ]
    plot = None
    trained = {name: run.metrics() for name, run in zip(names, opened, strict=True)}
    trained = {name: records for name, records in trained.items() if records}
    if out is not None and trained:
        plot = plot_comparison(trained, out)
    return Comparison(stats, config_differences(opened), plot, prompt)


def plot_comparison(metrics: dict[str, list[dict[str, Any]]], path: str | os.PathLike) -> Path:
    """Loss curves of several runs ({name: metrics records}) against tokens and against time.

    Thin lines: the training loss of each logged batch; dots: validation loss.
    """
    figure = _new_figure(12, 4.6)
    by_tokens, by_time = figure.subplots(1, 2, sharey=True)
    longest = max((m.get("elapsed", 0.0) for r in metrics.values() for m in r), default=0.0)
    minutes = longest > 180
    for index, (name, records) in enumerate(metrics.items()):
        colour = f"C{index % 10}"
        steps = [m for m in records if m.get("type") == "step" and "loss" in m]
        evals = [m for m in records if m.get("type") == "eval" and "val_loss" in m]
        for axes, x in ((by_tokens, "tokens"), (by_time, "elapsed")):
            scale = 60.0 if x == "elapsed" and minutes else 1.0
            axes.plot(
                [m.get(x, 0) / scale for m in steps],
                [m["loss"] for m in steps],
                color=colour,
                alpha=0.35,
                linewidth=1,
            )
            axes.plot(
                [m.get(x, 0) / scale for m in evals],
                [m["val_loss"] for m in evals],
                "o-",
                color=colour,
                label=f"{name} (validation)",
            )
    by_tokens.set_xlabel("tokens seen")
    by_time.set_xlabel(f"wall-clock time ({'minutes' if minutes else 'seconds'})")
    by_tokens.set_ylabel("cross-entropy loss")
    for axes in (by_tokens, by_time):
        axes.grid(alpha=0.3)
    by_tokens.legend(title="thin lines: training batches", fontsize=8, title_fontsize=8)
    return _save(figure, path)
