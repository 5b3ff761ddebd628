"""A run's evaluations, kept: RUN/evals/<YYYYmmdd-HHMMSS>-<kind>.json, one file per evaluation.

`slm-cli eval` writes one each time (validation loss, lm-eval benchmarks, the
built-in tasks), so a run's report can list every evaluation made of it, and
all kinds share one shape:

    {"created": ISO 8601, "kind": "loss" | "lm-eval" | ...,
     "scores": [{"task", "metric", "value", "stderr", "n", "chance", "baseline"}],
     "raw": what the evaluator itself returned (lm-eval's results dict), or null}

`stderr`, `n`, `chance` and `baseline` are null where they are not known. A score
means little alone, so each carries `chance` (what guessing gets) and `baseline`
(what a unigram model of the training tokens gets) where they apply. `slm-cli
report` reads them all back (`read_evals`) without knowing who made them.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .files import write_text_atomically

SCORE_FIELDS = ("task", "metric", "value", "stderr", "n", "chance", "baseline")


def score(task: str, metric: str, value: float, **known: Any) -> dict[str, Any]:
    """One score in the shared shape; fields not given are null."""
    unknown = set(known) - set(SCORE_FIELDS)
    if unknown:
        raise ValueError(f"a score has no field {sorted(unknown)[0]!r}; fields: {SCORE_FIELDS}")
    return {"task": task, "metric": metric, "value": float(value)} | {
        name: known.get(name) for name in SCORE_FIELDS[3:]
    }


def save_evaluation(
    run_path: str | os.PathLike,
    kind: str,
    scores: list[dict[str, Any]],
    raw: Any = None,
    *,
    now: datetime | None = None,
) -> Path:
    """Write RUN/evals/<timestamp>-<kind>.json atomically; return its path.

    A second evaluation of one kind within the same second is named after the next free
    second (its "created" stays exact), so none is lost and the names sort by time.
    """
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    folder = Path(run_path) / "evals"
    folder.mkdir(parents=True, exist_ok=True)
    name = now
    while (path := folder / f"{name:%Y%m%d-%H%M%S}-{kind}.json").exists():
        name += timedelta(seconds=1)
    record = {"created": now.isoformat(timespec="seconds"), "kind": kind, "scores": scores}
    record["raw"] = raw
    write_text_atomically(path, json.dumps(record, indent=2, default=str) + "\n")
    return path


def mean_stderr(values: list[float]) -> float | None:
    """The standard error of a mean (sample standard deviation / sqrt n), as lm-eval's."""
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)


def read_evals(run_path: str | os.PathLike) -> tuple[list[dict[str, Any]], list[str]]:
    """Every evaluation kept in `RUN/evals/`, oldest first, and one line per file that is
    not one (damaged, or foreign), so a report can say so instead of failing."""
    records, problems = [], []
    for path in sorted((Path(run_path) / "evals").glob("*.json")):
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
