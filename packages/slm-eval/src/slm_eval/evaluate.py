"""Benchmarks of a run with lm-evaluation-harness's own evaluator (`simple_evaluate`).

What slm adds to lm-eval is small: the `slm` model (lm.py), a check of the task
names before any model is loaded (one line naming close matches, not a
traceback), lm-eval's usual output folder when asked, and the scores in the
shape every slm evaluation shares (slm_train.evals), with the chance level of
multiple-choice tasks beside them.

lm-eval indexes its 14,000 built-in task files when it starts (seconds of
YAML). When every task asked for is defined in `include_path`, only that
folder is indexed.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slm_train import Run
from slm_train.evals import score

from .lm import SlmLM, template_of


class UnknownTaskError(ValueError):
    """A task name that neither lm-eval nor --include-path defines."""


@dataclass
class HarnessResult:
    scores: list[dict[str, Any]]  # slm_train.evals' shape
    raw: dict[str, Any]  # lm-eval's results dict, samples left out
    samples: dict[str, list[dict[str, Any]]]  # per task, lm-eval's record of each example
    output_path: Path | None  # where lm-eval wrote its results (and samples) files


def evaluate_tasks(
    run: Run | str | os.PathLike,
    tasks: list[str],
    *,
    include_path: str | os.PathLike | None = None,
    num_fewshot: int | None = None,
    limit: int | float | None = None,
    batch_size: int = 16,
    output_path: str | os.PathLike | None = None,
    log_samples: bool = False,
    apply_chat_template: bool = False,
    checkpoint: str = "best",
    device: str = "auto",
) -> HarnessResult:
    """Score `run` on lm-eval `tasks`; lm-eval's files go to `output_path` if given."""
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker

    run = run if isinstance(run, Run) else Run(run)
    manager = task_manager(tasks, include_path)
    if apply_chat_template:
        template_of(run)  # a run with no template fails here, before any work
    model = SlmLM(str(run.path), checkpoint, device, batch_size)
    tracker = EvaluationTracker(output_path=str(output_path)) if output_path else None
    results = simple_evaluate(
        model=model,
        model_args={"path": str(run.path)},  # names lm-eval's output folder after the run
        tasks=tasks,
        num_fewshot=num_fewshot,
        limit=limit,
        log_samples=True,  # always: the chance levels are counted from them
        evaluation_tracker=tracker,
        apply_chat_template=apply_chat_template,
        task_manager=manager,
    )
    samples = results.pop("samples")
    if tracker is not None:
        tracker.save_results_aggregated(results=results, samples=samples if log_samples else None)
        for task in results["configs"] if log_samples else ():
            tracker.save_results_samples(task_name=task, samples=samples[task])
    output = Path(output_path) if output_path else None
    return HarnessResult(scores_of(results, samples), results, samples, output)


def task_manager(names: list[str], include_path: str | os.PathLike | None = None):
    """lm-eval's TaskManager that knows `names`; UnknownTaskError naming close matches."""
    if include_path is not None:
        local = _manager(str(include_path), include_defaults=False)
        if set(names) <= set(local.all_subtasks):
            return local
    manager = _manager(include_path and str(include_path))
    known = set(manager.all_tasks)
    for name in names:
        if name not in known and not manager.match_tasks([name]):
            raise UnknownTaskError(_unknown(name, manager.all_tasks))
    return manager


def _manager(include_path: str | None, include_defaults: bool = True):
    from lm_eval.tasks import TaskManager

    if include_path is not None and not Path(include_path).is_dir():
        raise FileNotFoundError(f"no folder of task files at {include_path}; check --include-path")
    return TaskManager(include_path=include_path, include_defaults=include_defaults)


def _unknown(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return (
        f"lm-eval has no task {name!r}; {hint}`python -m slm_eval.harness ls tasks` lists "
        f"its {len(known):,} tasks, and --include-path adds your own"
    )


def scores_of(results: dict[str, Any], samples: dict[str, list]) -> list[dict[str, Any]]:
    """One score per task and metric: "acc,none" is metric acc; another filter is kept
    in the name ("exact_match,strict-match"). `n` is the examples scored; `chance` is
    known for multiple choice (the mean of 1/choices over the examples)."""
    scores = []
    for task, values in results["results"].items():
        n = results.get("n-samples", {}).get(task, {}).get("effective")
        chance = _chance(results["configs"].get(task, {}), samples.get(task, []))
        for key, value in values.items():
            if "," not in key or "_stderr," in key or not isinstance(value, int | float):
                continue
            metric, where = key.split(",", 1)
            stderr = values.get(f"{metric}_stderr,{where}")
            scores.append(
                score(
                    task,
                    metric if where == "none" else key,
                    value,
                    stderr=stderr if isinstance(stderr, int | float) else None,
                    n=n,
                    chance=chance if metric in ("acc", "acc_norm") else None,
                )
            )
    return scores


def _chance(config: dict[str, Any], samples: list[dict[str, Any]]) -> float | None:
    if config.get("output_type") != "multiple_choice" or not samples:
        return None
    return sum(1 / len(sample["arguments"]) for sample in samples) / len(samples)
