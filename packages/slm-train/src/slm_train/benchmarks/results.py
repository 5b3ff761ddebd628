"""Scores and where they are kept: `RUN/evals/<time>-<kind>.json`, one file per evaluation.

Every evaluation of a run (the built-in tasks here, lm-eval's tasks, the
validation loss) is kept beside the run in one format, so that `slm-cli
report` can show a run's whole history of measurements without knowing who
made them:

    {"created": ISO 8601, "kind": "builtin" | "lm-eval" | "loss" | ...,
     "scores": [{"task", "metric", "value", "stderr", "n", "chance", "baseline"}, ...],
     "raw": whatever else the evaluator keeps (a dict's "seconds" is shown as the time taken)}

A score means little alone, so each carries `chance` (what guessing gets)
and `baseline` (what a unigram model of the training tokens gets), either
None where it does not apply.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from ..files import write_text_atomically

EVALS = "evals"


def score(
    task: str,
    metric: str,
    value: float,
    *,
    n: int,
    stderr: float | None = None,
    chance: float | None = None,
    baseline: float | None = None,
) -> dict[str, Any]:
    """One score as the evals files keep it."""
    return {
        "task": task,
        "metric": metric,
        "value": value,
        "stderr": stderr,
        "n": n,
        "chance": chance,
        "baseline": baseline,
    }


def mean_stderr(values: list[float]) -> float | None:
    """The standard error of a mean (sample standard deviation / sqrt n), as lm-eval's."""
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)


def save_eval(
    run_dir: str | os.PathLike,
    kind: str,
    scores: list[dict[str, Any]],
    raw: Any = None,
    *,
    now: datetime | None = None,
) -> Path:
    """Write `RUN/evals/<YYYYmmdd-HHMMSS>-<kind>.json` atomically; returns its path.

    Two evaluations of one kind in the same second get `-2`, `-3`... rather
    than overwrite each other.
    """
    now = now or datetime.now().astimezone()
    folder = Path(run_dir) / EVALS
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{now:%Y%m%d-%H%M%S}-{kind}"
    path, number = folder / f"{stem}.json", 1
    while path.exists():
        number += 1
        path = folder / f"{stem}-{number}.json"
    record = {"created": now.isoformat(timespec="seconds"), "kind": kind, "scores": scores}
    record["raw"] = raw
    write_text_atomically(path, json.dumps(record, indent=2) + "\n")
    return path


def read_evals(run_dir: str | os.PathLike) -> tuple[list[dict[str, Any]], list[str]]:
    """Every evaluation kept in `RUN/evals/`, oldest first, and one line per file that is
    not one (damaged, or foreign), so a report can say so instead of failing."""
    records, problems = [], []
    for path in sorted((Path(run_dir) / EVALS).glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            scores = record.get("scores")
            if not isinstance(scores, list) or not all(isinstance(s, dict) for s in scores):
                raise ValueError
        except (OSError, ValueError, AttributeError):
            problems.append(f"{path} is not an evaluation record (damaged?); it was left out")
            continue
        records.append({**record, "file": path.name})
    return records, problems
