"""Measuring a model: mean loss over batches, and a run's loss and perplexity on a corpus.

Perplexity is exp(loss): the number of equally likely tokens the model is, on
average, choosing between. A uniform guess over a 4,096-token vocabulary has
perplexity 4,096; a trained small model on simple English gets to about 30.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data.datasets import DataTooSmallError, sequential_windows
from .data.prepare import default_data_dir, load_prepared, prepare
from .evals import score
from .naming import setting
from .run import Run, RunError
from .runtime import autocast, resolve_device, resolve_precision


def evaluate_loss(
    model: torch.nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    precision: str = "fp32",
) -> float:
    """Mean loss per target token over all batches, in eval mode (no dropout).

    Targets of -100 are ignored, as in training (padding, masked prompts), and
    each batch weighs as many targets as it scores: a short last batch, or one
    whose prompts are masked, counts for what it holds, not as a whole batch.
    Restores the model's mode after.
    """
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad(), autocast(device, precision):
        for x, y in batches:
            targets = int((y != -100).sum())
            if targets:
                _, loss = model(x.to(device), y.to(device))
                total, count = total + loss.item() * targets, count + targets
    model.train(was_training)
    if not count:
        raise DataTooSmallError("no batches to evaluate: the data is smaller than one window")
    return total / count


@dataclass
class EvalResult:
    source: str
    tokens: int  # tokens scored
    loss: float

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.loss, 50))

    def scores(self) -> list[dict]:
        """Loss and perplexity as evals.py's scores (`n` is the tokens scored)."""
        return [
            score(self.source, "loss", self.loss, n=self.tokens),
            score(self.source, "perplexity", self.perplexity, n=self.tokens),
        ]


def evaluate_run(
    run: Run | str | Path,
    data: str | None = None,
    *,
    checkpoint: str = "best",
    batch_size: int = 16,
    max_batches: int | None = None,
    device: str = "auto",
    progress=None,
) -> EvalResult:
    """Loss of a run on its own validation split, or on another corpus `data`.

    Other text is tokenized with the run's tokenizer (into data/, reused next
    time) and scored whole, in non-overlapping windows of the context length.
    """
    run = run if isinstance(run, Run) else Run(run)
    run.tokenizer()  # checks that it matches the run
    tokens, source = _tokens(run, data, progress)  # before the model: fail fast on data
    dev = resolve_device(device)
    model = run.load_model(checkpoint, dev)
    block = model.config.block_size
    batches = _Tally(sequential_windows(tokens, block, batch_size, max_batches))
    loss = evaluate_loss(model, batches, dev, resolve_precision("auto", dev))
    return EvalResult(source, batches.targets, loss)


class _Tally:
    """Batches passed through, counting the targets they hold: the tokens actually scored
    (whole windows only; the tail shorter than a window is not), whatever the windowing."""

    def __init__(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.batches, self.targets = batches, 0

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.batches:
            self.targets += int((y != -100).sum())
            yield x, y


def _tokens(run: Run, data: str | None, progress) -> tuple[np.ndarray, str]:
    if data is None:
        if "val_tokens" not in run.config["data"]:  # fine-tuned or imported: no token files
            raise RunError(
                f"{run.path} has no validation split of its own (it was not pre-trained "
                f"here); evaluate it on some text with {setting('data')}"
            )
        prepared = load_prepared(run.config["data"]["dir"])
        if prepared.meta["tokenizer"]["sha256"] != run.config["tokenizer"]["sha256"]:
            raise RunError(
                f"the data in {prepared.directory} was re-prepared with another tokenizer; "
                f"pass {setting('data')}"
            )
        return prepared.tokens("val"), f"{prepared.meta['source']} (validation split)"
    spec = f"file:{run.path / 'tokenizer.json'}"
    folder = default_data_dir(data, f"tokenizer-of-{run.path.name}")
    prepared = prepare(data, folder, spec, progress=progress)
    return np.concatenate([prepared.tokens("train"), prepared.tokens("val")]), data
