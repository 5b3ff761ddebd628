"""A run's life as stages: the run itself and the runs it was tuned from, oldest first.

`train --chat` leaves two runs, `runs/chat-base` (pre-training) and
`runs/chat` (chat fine-tuning), and the second names the first in its
config.json (`data.base`). Following those names back gives every stage of a
model's life, whichever run the report is asked for. A run that names no
base and has no token files of its own was imported from the hub.

What a stage did is read from its files alone (metrics.jsonl, the best
checkpoint's header); no model is built, so a report on a large run is quick.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from safetensors import safe_open

from ..run import Run, RunError

MAX_STAGES = 8  # more is a loop of bases, not a model's life

STAGE_NAMES = {
    "pre-trained": "pre-training",
    "imported": "import",
    "chat": "chat fine-tuning",
    "instruct": "instruction tuning",
    "classifier": "classifier fine-tuning",
}


@dataclass
class StageStats:
    steps: int
    tokens: int  # training tokens seen
    elapsed: float  # seconds, evaluations included
    tokens_per_s: float | None  # median of the logged steps
    mfu: float | None  # median, where the device's peak is known
    best: dict[str, Any] | None  # the evaluation with the lowest validation loss
    last: dict[str, Any] | None  # the last evaluation
    test: dict[str, float]  # test-set scores of a fine-tuning


@dataclass
class Stage:
    run: Run
    name: str  # "pre-training", "chat fine-tuning", "import"...

    @property
    def imported(self) -> bool:
        data = self.run.config.get("data", {})
        return not data.get("base") and "val_tokens" not in data

    @property
    def pretrained(self) -> bool:
        return "val_tokens" in self.run.config.get("data", {})

    def stats(self) -> StageStats | None:
        """Steps, tokens, time and losses from metrics.jsonl; None where nothing was trained."""
        metrics = self.run.metrics()
        steps = [m for m in metrics if m.get("type") == "step"]
        evals = [m for m in metrics if m.get("type") == "eval" and "val_loss" in m]
        if not steps and not evals:
            return None
        test = next((m for m in metrics if m.get("type") == "test"), {})
        return StageStats(
            steps=max(m.get("step", 0) for m in steps + evals),
            tokens=max(m.get("tokens", 0) for m in steps + evals),
            elapsed=max(m.get("elapsed", 0.0) for m in steps + evals),
            tokens_per_s=_median(m.get("tokens_per_s") for m in steps),
            mfu=_median(m.get("mfu") for m in steps),
            best=min(evals, key=lambda m: m["val_loss"]) if evals else None,
            last=evals[-1] if evals else None,
            test={k: v for k, v in test.items() if isinstance(v, float)},
        )


def _median(values) -> float | None:
    present = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(present) if present else None


def parameter_counts(run: Run) -> tuple[int, int]:
    """(parameters, without the embedding tables), from the best checkpoint's tensor shapes.

    A tied output layer is stored once, so it is counted once, as
    GPTModel.num_parameters counts it.
    """
    directory = run.checkpoint("best").directory
    with safe_open(str(directory / "model.safetensors"), framework="pt") as file:
        total = sum(math.prod(file.get_slice(name).get_shape()) for name in file.keys())  # noqa: SIM118
    c = run.model_config
    embeddings = c.vocab_size * c.n_embd + (c.block_size * c.n_embd if c.pos == "learned" else 0)
    return total, total - embeddings


def stage_of(run: Run) -> Stage:
    kind = run.config.get("kind", "pre-trained")
    stage = Stage(run, STAGE_NAMES.get(kind, kind))
    if stage.imported:
        stage.name = "import"
    return stage


def stages(run: Run) -> tuple[list[Stage], list[str]]:
    """The stages that made `run`, oldest first, and a line for a base that is gone."""
    found, problems = [stage_of(run)], []
    while len(found) < MAX_STAGES:
        base = found[0].run.config.get("data", {}).get("base")
        if not base:
            break
        try:
            found.insert(0, stage_of(Run(base)))
        except RunError as error:
            problems.append(f"the base run {base} cannot be read ({error}); its stage is left out")
            break
    return found, problems
