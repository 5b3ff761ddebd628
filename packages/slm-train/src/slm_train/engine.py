"""The training engine: one loop for pre-training and both kinds of fine-tuning.

Read `Trainer.fit` first. It is the loop of the book's `train_model_simple`:

    while budget left:
        set the learning rate           (warm-up, then cosine: optim.py)
        for each micro-batch:           (accumulate_gradients)
            loss = task.loss(model, batch) / micro-batches
            loss.backward()
        clip the gradient norm, optimizer.step(), zero the gradients
        every eval_interval steps: evaluate, checkpoint, plot

What differs between kinds of training is a `Task`: its batches, its loss
(next token, last-token class, masked response), its evaluation and what
"best" means. Everything else is here, so every kind of training gets it:
mixed precision with a gradient scaler for fp16, gradient accumulation, DDP
under torchrun, clipping, exact resume, Ctrl-C saving `last/`, metrics.jsonl,
loss.png and progress through a `Reporter`.

Exact resume: a step's batches and dropout masks are functions of
(seed, rank, step), and `last/` holds weights, optimizer, scaler and
`TrainState`, so a resumed run repeats the uninterrupted run's losses exactly.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import Checkpoint, save_checkpoint
from .config import LoopConfig
from .metrics import MetricsLog, Throughput, peak_flops
from .optim import learning_rate, make_optimizer, set_learning_rate
from .plot import plot_losses
from .report import Reporter
from .runtime import Distributed, autocast

Batch = Sequence[torch.Tensor]


class TrainingError(RuntimeError):
    """Training cannot go on; the message says why and what to do."""


class Task:
    """What one kind of training supplies. Subclasses override the first three."""

    flops_per_token: float = 0.0

    def batch(self, step: int, index: int) -> Batch:
        """Micro-batch `index` of optimizer step `step` (a pure function: exact resume)."""
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """The mean loss of a batch, as a tensor that backward() can follow."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, step: int) -> tuple[dict[str, float], str | None]:
        """Validation metrics (in eval mode, without gradients) and an optional sample."""
        raise NotImplementedError

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


def accumulate_gradients(
    model: nn.Module,
    batches: list[Batch],
    loss_fn: Callable[[nn.Module, Batch], torch.Tensor],
    scaler: torch.amp.GradScaler,
    device: torch.device,
    precision: str,
    distributed: bool = False,
) -> torch.Tensor:
    """Backward over micro-batches so the gradient equals that of their concatenation.

    Each micro-batch's mean loss is divided by their number, so the summed
    gradients are the gradient of the mean over all of them. Under DDP,
    gradients are averaged across processes only on the last micro-batch; the
    others skip that communication with `no_sync()`. Returns the mean loss.
    """
    total = torch.zeros((), device=device)
    for index, batch in enumerate(batches):
        batch = [t.to(device, non_blocking=True) for t in batch]
        last = index == len(batches) - 1
        with contextlib.nullcontext() if last or not distributed else model.no_sync():
            with autocast(device, precision):
                loss = loss_fn(model, batch) / len(batches)
            scaler.scale(loss).backward()
        total += loss.detach().float()
    return total


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        task: Task,
        config: LoopConfig,
        run_dir: Path,
        *,
        device: torch.device,
        precision: str,
        dist: Distributed | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        self.model, self.task, self.config, self.run_dir = model, task, config, Path(run_dir)
        config.warn_if_odd()
        self.device, self.precision = device, precision
        self.dist = dist or Distributed()
        self.reporter = reporter if reporter and self.dist.is_main else Reporter()
        self.optimizer = make_optimizer(model, config, device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.state = TrainState()
        self.metrics: MetricsLog | None = None
        self.train_model = torch.compile(model) if config.compile else model
        if self.dist.enabled:
            self.train_model = self.dist.wrap(self.train_model)

    def resume(self, checkpoint: Checkpoint) -> None:
        """Continue from `last/`: weights, optimizer, gradient scaler and state."""
        checkpoint.load_weights(self.model)
        saved = checkpoint.optimizer_state()
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scaler.load_state_dict(saved["scaler"])
        saved_state = checkpoint.state
        self.state = TrainState(
            step=saved_state["step"],
            tokens=saved_state["tokens"],
            best_score=saved_state.get("best_score", saved_state.get("best_val_loss", math.inf)),
            elapsed=saved_state["elapsed"],
        )

    # ----------------------------------------------------------------- loop
    def fit(self) -> FitResult:
        self.started, self.last_eval = time.perf_counter(), None
        self.metrics = self._open_metrics()
        self.throughput = Throughput(self.task.flops_per_token, peak_flops(self.device))
        evaluated_at = None
        self.model.train()
        try:
            while not self.dist.agree_to_stop(self.progress() >= 1.0):
                lr = learning_rate(self.config, self.state.step, self.progress())
                set_learning_rate(self.optimizer, lr)
                loss = self.train_step()
                self.log(loss, lr)
                if self.state.step % self.eval_interval == 0:
                    self.evaluate_and_save()
                    evaluated_at = self.state.step
        except KeyboardInterrupt:
            return self.interrupted()
        if evaluated_at != self.state.step:
            self.evaluate_and_save()
        self.reporter.finish({})
        return FitResult(self.state, False, self.last_eval, self.history)

    def train_step(self) -> float:
        """One optimizer step over grad_accum_steps micro-batches per process."""
        step, accumulation = self.state.step, self.config.grad_accum_steps
        torch.manual_seed(hash((self.config.seed, self.dist.rank, step)) % 2**63)  # dropout
        # DDP with N processes and accumulation A draws the micro-batches that one
        # process with accumulation N * A would: rank r takes r*A ... r*A + A-1.
        first = self.dist.rank * accumulation
        batches = [self.task.batch(step, first + i) for i in range(accumulation)]
        loss = accumulate_gradients(
            self.train_model,
            batches,
            self.task.loss,
            self.scaler,
            self.device,
            self.precision,
            self.dist.enabled,
        )
        if self.config.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            trainable = [p for p in self.model.parameters() if p.requires_grad]
            torch.nn.utils.clip_grad_norm_(trainable, self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        tokens = sum(batch[0].numel() for batch in batches) * self.dist.world_size
        self.state.step += 1
        self.state.tokens += tokens
        self.throughput.add(tokens)
        return self._finite(self.dist.mean(loss).item())

    # ------------------------------------------------------------- pieces
    @property
    def eval_interval(self) -> int:
        return self.config.eval_interval or self.config.max_steps or 1

    def elapsed(self) -> float:
        return self.state.elapsed + time.perf_counter() - self.started

    def progress(self) -> float:
        """The fraction of the budget spent: the most spent of steps, tokens and time."""
        c, spent = self.config, [0.0]
        if c.max_steps:
            spent.append(self.state.step / c.max_steps)
        if c.max_tokens:
            spent.append(self.state.tokens / c.max_tokens)
        if c.max_time:
            spent.append(self.elapsed() / c.max_time)
        return min(1.0, max(spent))

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.metrics.records if self.metrics else []

    def log(self, loss: float, lr: float) -> None:
        step = self.state.step
        if self.metrics is None or (step % self.config.log_interval and step != 1):
            return
        record = {"type": "step", "step": step, "tokens": self.state.tokens, "loss": loss}
        record |= {"lr": lr, **self.throughput.read(), "elapsed": self.elapsed()}
        record["progress"] = self.progress()
        self.metrics.append(record)
        self.reporter.step(record)

    def evaluate_and_save(self) -> None:
        """Rank 0 evaluates, checkpoints and plots while the other processes wait."""
        if self.dist.is_main:
            self.model.eval()
            with torch.no_grad(), autocast(self.device, self.precision):
                metrics, sample = self.task.evaluate(self.model, self.state.step)
            self.model.train()
            record = {"type": "eval", "step": self.state.step, "tokens": self.state.tokens}
            self.last_eval = record | metrics | {"elapsed": self.elapsed()}
            self.metrics.append(self.last_eval)
            self.reporter.evaluation(self.last_eval, sample)
            if self.task.score(metrics) < self.state.best_score:
                self.state.best_score = self.task.score(metrics)
                self.save("best")
            self.save("last")
            plot_losses(self.metrics.records, self.run_dir / "loss.png")
        self.dist.barrier()

    def save(self, which: str) -> None:
        state = asdict(self.state) | {"elapsed": self.elapsed()}
        state["time"] = datetime.now().isoformat(timespec="seconds")
        if which == "best":
            save_checkpoint(self.run_dir / which, self.task.export(self.model), state)
            return
        optimizer = {"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict()}
        save_checkpoint(self.run_dir / which, self.model, state, optimizer)

    def interrupted(self) -> FitResult:
        """Ctrl-C: keep the work done so far in `last/`, to continue with --resume."""
        if self.dist.is_main:
            self.reporter.finish({})
            self.save("last")
            self.reporter.message(
                f"interrupted at step {self.state.step}: saved {self.run_dir / 'last'}; "
                "continue with --resume"
            )
        self.dist.barrier()
        return FitResult(self.state, True, self.last_eval, self.history)

    def _open_metrics(self) -> MetricsLog | None:
        if not self.dist.is_main:
            return None
        resumed = self.state.step if self.state.step else None
        return MetricsLog(self.run_dir / "metrics.jsonl", resumed)

    def _finite(self, loss: float) -> float:
        if math.isfinite(loss):
            return loss
        last = self.run_dir / "last"
        if last.exists():
            where = f"the last good checkpoint is {last}; "
        else:
            where = "no checkpoint was written yet; "
        raise TrainingError(
            f"the loss became {loss} at step {self.state.step}; {where}"
            "lower the learning rate (--lr) or use --precision bf16 or fp32"
        )
