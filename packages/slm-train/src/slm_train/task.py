"""What one kind of training supplies to the engine, and what the engine keeps track of.

A `Task` is the difference between pre-training, classification and
instruction tuning: where batches come from, what the loss is, how to
evaluate, and which evaluation is "best". `TrainState` is all the engine
itself needs to remember between steps, so it is what a checkpoint saves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

Batch = Sequence[torch.Tensor]


class TrainingError(RuntimeError):
    """Training cannot go on; the message says why and what to do."""


class Task:
    """What one kind of training supplies.

    Subclasses override the first three, and `count_targets` when their batches
    hold different numbers of targets (masks, padding).
    """

    flops_per_token: float = 0.0
    eval_steps: float = 1.0  # the last evaluation's cost in training steps, until one is timed
    final_eval_cost: float = 1.0  # the last evaluation's time over that of the ones before it

    def batch(self, step: int, index: int) -> Batch:
        """Micro-batch `index` of optimizer step `step` (a pure function: exact resume)."""
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """The mean loss over a batch's targets, as a tensor that backward() can follow."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, step: int) -> tuple[dict[str, float], str | None]:
        """Validation metrics (in eval mode, without gradients) and an optional sample."""
        raise NotImplementedError

    def evaluate_final(self, model: nn.Module, step: int) -> tuple[dict[str, float], str | None]:
        """The run's last evaluation; the same as the others unless a task makes those cheaper
        (pre-training evaluates fewer batches until the last: `final_eval_cost` says how much)."""
        return self.evaluate(model, step)

    def count_targets(self, batch: Batch) -> int | None:
        """How many targets the batch's mean loss is over, or None: as many in every batch.

        Tasks whose batches differ (masked prompts, padding) count, so that the engine
        weights each micro-batch's mean by its share of the step's targets: then
        accumulation and several processes learn what one big batch would. None (the
        default) gives every micro-batch the same weight, with no count to exchange.
        Counted on the batch as `batch()` made it, before it moves to the device.
        """
        return None

    def count_tokens(self, batches: list[Batch]) -> int:
        """The tokens one process trained on in a step (the run's count and tokens/s).

        The batches' size, unless the task makes its tokens inside `loss` (RL samples
        its answers there; its batches hold only which prompts to ask)."""
        return sum(batch[0].numel() for batch in batches)

    def step_metrics(self) -> dict[str, float]:
        """What the task saw while training since the last step record (RL: the reward)."""
        return {}

    def score(self, metrics: dict[str, float]) -> float:
        """Lower is better: the evaluation with the lowest score is saved as `best/`."""
        return metrics["val_loss"]

    def export(self, model: nn.Module) -> nn.Module:
        """The weights `best/` keeps (LoRA fine-tuning merges its adapters here)."""
        return model


@dataclass
class TrainState:
    """Where training stands; saved in every checkpoint, restored on resume."""

    step: int = 0
    tokens: int = 0
    best_score: float = math.inf
    elapsed: float = 0.0


@dataclass
class FitResult:
    state: TrainState
    interrupted: bool = False
    last_eval: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # preparation, training, evaluation
