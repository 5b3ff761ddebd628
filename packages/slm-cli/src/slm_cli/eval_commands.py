"""`slm-cli eval --tasks`: benchmarks, rendered as a table and kept in the run.

The work is elsewhere: lm-eval's tasks run through slm_eval.evaluate_tasks
(the `eval` extra, imported only here, only when asked), slm's own offline
tasks through slm_train.benchmarks; each evaluation is kept as
RUN/evals/<time>-<kind>.json by slm_train.save_evaluation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()

INSTALL = "uv sync --extra eval"


def builtin_tasks() -> tuple[frozenset[str], Callable[..., list[dict]]]:
    """slm's own offline tasks (slm_train.benchmarks) and what runs them; the rest of the
    names go to lm-eval."""
    from slm_train.benchmarks import BUILTIN_TASKS, run_builtin

    return frozenset(BUILTIN_TASKS), run_builtin


def evaluate_tasks(run, names: list[str], *, limit: int | None, **harness: Any) -> None:
    """Score `run` on `names`, keep each kind of evaluation in the run, show the scores."""
    from slm_train import save_evaluation

    builtin, run_builtin = builtin_tasks()
    ours, theirs = [n for n in names if n in builtin], [n for n in names if n not in builtin]
    if ours:
        started = time.perf_counter()
        with _bar() as progress:
            settings = {key: harness[key] for key in ("checkpoint", "device") if key in harness}
            scores = run_builtin(run.path, ours, limit=limit, progress=progress, **settings)
        raw = {"seconds": round(time.perf_counter() - started, 1)}
        render(
            f"slm's tasks on {run.path}", scores, save_evaluation(run.path, "builtin", scores, raw)
        )
    if theirs:
        result = _harness()(run, theirs, limit=limit, **harness)
        saved = save_evaluation(run.path, "lm-eval", result.scores, result.raw)
        render(f"lm-eval on {run.path}", result.scores, saved, result.output_path)


@contextmanager
def _bar() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar, one line per task, fed as progress(task, done, total)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        lines: dict[str, Any] = {}

        def update(task: str, done: int, total: int) -> None:
            if task not in lines:
                lines[task] = bar.add_task(task, total=total)
            bar.update(lines[task], completed=done, total=total)

        yield update


def _harness():
    """slm_eval.evaluate_tasks, or one line saying how to install it."""
    try:
        from slm_eval import evaluate_tasks as harness
    except ModuleNotFoundError as error:
        if error.name not in ("slm_eval", "lm_eval"):
            raise
        raise ModuleNotFoundError(
            f"--tasks runs lm-evaluation-harness, which is not installed; install it: {INSTALL}"
        ) from None
    return harness


def render(title: str, scores: list[dict], saved: Path, output: Path | None = None) -> None:
    """The scores, one row each; a column none of them has (say, chance) is left out."""
    table = Table(title=title)
    for column in ("task", "metric"):  # names in full; the numbers give way
        table.add_column(column, min_width=max((len(s[column]) for s in scores), default=4))
    extra = [
        c for c in ("stderr", "n", "chance", "baseline") if any(s[c] is not None for s in scores)
    ]
    for column in ("value", *extra):
        table.add_column("± stderr" if column == "stderr" else column, justify="right")
    for s in scores:
        table.add_row(s["task"], s["metric"], *(_number(s[column]) for column in ("value", *extra)))
    console.print(table)
    console.print(f"Saved in {saved}" + (f"; lm-eval's files are in {output}" if output else ""))


def _number(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.1f}"
