"""The evaluations as a picture: each score beside the unigram baseline and chance.

A table of numbers hides the one thing a reader wants to see at a glance:
how far above the floor the model is. One panel holds the accuracies (0 to
1, higher is better), another the bits per byte (lower is better).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..plot import _new_figure, _save

ACCURACIES = ("acc", "exact_match")  # metrics between 0 and 1; others (losses...) are not drawn
SERIES = (("value", "model", "tab:blue"), ("baseline", "unigram baseline", "tab:gray"),
          ("chance", "chance", "tab:red"))  # fmt: skip


def plot_scores(scores: list[dict], path: str | os.PathLike) -> Path | None:
    """Grouped bars of the scores that have a chance or a baseline; None if none has."""
    comparable = [s for s in scores if s.get("chance") is not None or s.get("baseline") is not None]
    metrics = [str(s.get("metric")) for s in comparable]
    panels = {
        "bits per byte (lower is better)": [
            s for s, m in zip(comparable, metrics, strict=True) if m == "bits_per_byte"
        ],
        "accuracy (higher is better)": [
            s for s, m in zip(comparable, metrics, strict=True) if m.startswith(ACCURACIES)
        ],
    }
    panels = {title: group for title, group in panels.items() if group}
    if not panels:
        return None
    widths = [max(2.0, 1.2 * len(group)) for group in panels.values()]
    figure = _new_figure(sum(widths) + 1.5, 3.8)
    axes_list = figure.subplots(1, len(panels), squeeze=False, width_ratios=widths)[0]
    for axes, (title, group) in zip(axes_list, panels.items(), strict=True):
        for offset, (key, label, colour) in enumerate(SERIES):
            xs = [index + (offset - 1) * 0.27 for index in range(len(group))]
            ys = [s.get(key) if s.get(key) is not None else 0.0 for s in group]
            axes.bar(xs, ys, width=0.27, color=colour, label=label)
        axes.set_xticks(range(len(group)), [f"{s.get('task')}\n{s.get('metric')}" for s in group])
        axes.tick_params(axis="x", labelsize=8)
        axes.set_title(title, fontsize=10)
        axes.grid(axis="y", alpha=0.3)
        if str(group[0].get("metric")).startswith(ACCURACIES):
            axes.set_ylim(0, 1)
    axes_list[0].legend(fontsize=8)
    return _save(figure, path)
