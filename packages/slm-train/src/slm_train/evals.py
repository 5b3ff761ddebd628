"""A run's evaluations, kept: RUN/evals/<YYYYmmdd-HHMMSS>-<kind>.json, one file per evaluation.

`slm-cli eval` writes one each time (validation loss, lm-eval benchmarks, the
built-in tasks), so a run's report can list every evaluation made of it, and
all kinds share one shape:

    {"created": ISO 8601, "kind": "loss" | "lm-eval" | ...,
     "scores": [{"task", "metric", "value", "stderr", "n", "chance", "baseline"}],
     "raw": what the evaluator itself returned (lm-eval's results dict), or null}

`stderr`, `n`, `chance` and `baseline` are null where they are not known.
"""

from __future__ import annotations

import json
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
