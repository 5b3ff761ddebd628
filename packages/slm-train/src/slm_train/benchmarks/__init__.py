"""Offline benchmarks: a run's scores on tasks that need no download.

Where this sits: `slm-cli eval --tasks bpb,cloze,chat` runs these, and
lm-evaluation-harness's tasks (package slm-eval) beside them; every result
is kept in `RUN/evals/` (results.py) for `slm-cli report`. They are native
code, with no dependency beyond slm-train's, so the default run has benchmark
numbers on any machine:

    bpb    bits per byte on the held-out split: a loss comparable across tokenizers
    cloze  the last word of a held-out sentence among 4 candidates (LAMBADA/HellaSwag-style)
    chat   a chat run's answers to held-out checkable problems (chat/checkable.py)

Each score stands beside `chance` and a `baseline`: the unigram model of the
run's training tokens (unigram.py), scored on the same items.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from ..evals import read_evals, save_evaluation, score
from ..run import Run
from ..runtime import resolve_device
from .bpb import bpb_task
from .chat import chat_task
from .cloze import cloze_task
from .context import Progress, TaskContext
from .heldout import BenchmarkError


@dataclass(frozen=True)
class BuiltinTask:
    name: str
    description: str
    run: Callable[[TaskContext, int | None], list[dict]]  # (context, limit) -> scores


BUILTIN_TASKS: dict[str, BuiltinTask] = {
    task.name: task
    for task in (
        BuiltinTask("bpb", "bits per byte on the held-out split (lower is better)", bpb_task),
        BuiltinTask("cloze", "last word of a held-out sentence, 1 of 4", cloze_task),
        BuiltinTask("chat", "held-out checkable problems, for chat runs", chat_task),
    )
}


def run_builtin(
    run_dir: str | os.PathLike | Run,
    names: list[str],
    limit: int | None = None,
    progress: Progress | None = None,
    *,
    checkpoint: str = "best",
    device: str = "auto",
) -> list[dict]:
    """Score a run on built-in tasks; returns the score dicts of every task, in order.

    `limit` caps each task's items (bpb: windows of the context length; cloze:
    sentences; chat: problems per skill). `progress(task, done, total)` is
    called as items are scored.
    """
    unknown = [name for name in names if name not in BUILTIN_TASKS]
    if unknown:
        raise BenchmarkError(
            f"unknown built-in task {unknown[0]!r}; the built-in tasks are: "
            f"{', '.join(BUILTIN_TASKS)}"
        )
    if limit is not None and limit < 1:
        raise BenchmarkError(f"limit must be at least 1, got {limit}")
    run = run_dir if isinstance(run_dir, Run) else Run(run_dir)
    model = run.load_model(checkpoint, resolve_device(device))
    context = TaskContext(run, model, progress)
    return [result for name in names for result in BUILTIN_TASKS[name].run(context, limit)]


__all__ = [
    "BUILTIN_TASKS",
    "BenchmarkError",
    "BuiltinTask",
    "read_evals",
    "run_builtin",
    "save_evaluation",
    "score",
]
