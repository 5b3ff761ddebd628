"""The training engine: one loop for pre-training and both kinds of fine-tuning.

Read `Trainer.fit` first. It is the loop of the book's `train_model_simple`:

    while budget left:
        set the learning rate              warm-up, then cosine or WSD (optim.py)
        for each micro-batch:              accumulate_gradients
            share = task.count_targets(batch) / the step's targets, in all processes
            loss = task.loss(model, batch) * share;  loss.backward()
        clip the gradient norm, optimizer.step(), zero the gradients
                                           AdamW, or Muon + AdamW (optim.py, muon.py)
        every eval_interval steps:         evaluate, checkpoint, plot

What differs between kinds of training is a `Task` (task.py): its batches,
its loss, its evaluation and what "best" means. The rest hangs off this loop
under names that say what they are: mixed precision with a gradient scaler
(runtime.autocast), DDP (runtime.Distributed; under DDP, Ctrl-C stops every
process at the same step: runtime.Interrupts), the budget (budget.py),
checkpoints and exact resume (checkpoint.py), metrics.jsonl and loss.png.

Exact resume: a step's batches and dropout masks are functions of
(seed, rank, step), and `last/` holds the weights, optimizer, scaler and
`TrainState`, so a resumed run repeats the uninterrupted run's losses exactly.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from .budget import Budget
from .checkpoint import Checkpoint, restore_training, save_checkpoint, save_training
from .compilation import maybe_compile
from .config import LoopConfig
from .metrics import MetricsLog, Throughput, optimizer_flops_per_step
from .naming import setting
from .optim import learning_rate, make_optimizer, set_learning_rate, set_muon_schedules
from .peak import peak_flops
from .plot import plot_losses
from .report import Reporter
from .runtime import Distributed, Interrupts, autocast, to_device
from .task import Batch, FitResult, Task, TrainingError, TrainState

__all__ = ["Batch", "FitResult", "Task", "TrainState", "Trainer", "TrainingError"]


def accumulate_gradients(
    model: nn.Module,
    batches: list[Batch],
    task: Task,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    precision: str,
    dist: Distributed | None = None,
) -> torch.Tensor:
    """Backward over a step's micro-batches so the gradient is that of one big batch.

    Each micro-batch's mean loss is weighted by its share of the step's targets
    (`loss_shares`), so the summed gradients are those of the mean over every
    target of the step: a short response weighs as much per token as a long
    one, whatever the accumulation and the number of processes. Under DDP,
    gradients are averaged across processes only on the last micro-batch; the
    others skip that communication with `no_sync()`. Returns this process's
    part of the step's loss; the mean of the parts over processes is the loss.
    """
    dist = dist or Distributed()
    numerators, denominator = loss_shares(task, batches, dist)
    total = torch.zeros((), device=device)
    for index, (batch, numerator) in enumerate(zip(batches, numerators, strict=True)):
        batch = [to_device(t, device) for t in batch]
        last = index == len(batches) - 1
        with contextlib.nullcontext() if last or not dist.enabled else model.no_sync():
            with autocast(device, precision):
                loss = task.loss(model, batch)
            if numerator == 0:  # no targets: the mean of nothing is nan, and it weighs nothing
                loss = loss.nan_to_num(0.0, 0.0, 0.0)
            loss = loss * numerator / denominator
            scaler.scale(loss).backward()  # fp16: scaled up so small gradients do not vanish
        total += loss.detach().float()
    return total


def loss_shares(task: Task, batches: list[Batch], dist: Distributed) -> tuple[list[int], int]:
    """Each micro-batch's weight in the step's loss: numerators over one denominator.

    A task that counts targets (`Task.count_targets`) weighs a micro-batch by its count
    over the count in every micro-batch of every process, summed in one all-reduce
    per step; times the number of processes, since DDP averages their gradients.
    A task that does not count gives every micro-batch 1 / micro-batches, with no
    communication (pre-training: every window holds block_size targets).
    """
    counts = [task.count_targets(batch) for batch in batches]
    if None in counts:
        return [1] * len(batches), len(batches)
    total = dist.sum(sum(counts))
    return [count * dist.world_size for count in counts], max(total, 1)


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
        preparation: float = 0.0,
    ) -> None:
        config.warn_if_odd()
        self.model, self.task, self.config, self.run_dir = model, task, config, Path(run_dir)
        self.device, self.precision, self.dist = device, precision, dist or Distributed()
        self.reporter = reporter if reporter and self.dist.is_main else Reporter()
        self.optimizer = make_optimizer(model, config, device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.state, self.preparation = TrainState(), preparation
        # Only the training steps run compiled: evaluation and sampling use `model`
        # itself, so their other shapes and no_grad mode never trigger a recompilation.
        self.train_model = maybe_compile(model, self.compile_setting())
        if self.dist.enabled:
            self.train_model = self.dist.wrap(self.train_model)

    def resume(self, checkpoint: Checkpoint) -> None:
        """Continue from `last/`: weights, optimizer, gradient scaler and state."""
        saved = restore_training(checkpoint, self.model, self.optimizer, self.scaler)
        self.state = TrainState(**{k: v for k, v in saved.items() if k in asdict(self.state)})
        if not checkpoint.resumable:
            self.reporter.message(
                f"resuming from {checkpoint.directory} (step {self.state.step}) with a fresh "
                "optimizer: it holds no optimizer state, so the losses will not repeat exactly"
            )

    def fit(self) -> FitResult:
        self.budget = Budget(
            self.config,
            self.state.elapsed,
            self.preparation,
            self.task.eval_steps,
            self.task.final_eval_cost,
        )
        self.metrics = MetricsLog.open(self.run_dir, self.state.step, self.dist.is_main)
        self.throughput = Throughput(
            self.task.flops_per_token,
            peak_flops(self.device, self.precision),
            optimizer_flops_per_step(self.optimizer),
        )
        self.last_eval, final_at = None, None
        self.model.train()
        try:
            with Interrupts(self.dist.enabled) as interrupts:
                while not self.agree_to_stop(interrupts):
                    progress = self.budget.spent(self.state)
                    lr = learning_rate(self.config, self.state.step, progress)
                    set_learning_rate(self.optimizer, lr)
                    set_muon_schedules(self.optimizer, self.config, progress)
                    with self.budget.phase("training"):
                        loss = self.train_step()
                    self.log(loss, lr)
                    if self.state.step % self.eval_interval == 0:
                        (final,) = self.dist.agree(self.budget.spent(self.state) >= 1)
                        self.evaluate_and_save(final=final)
                        final_at = self.state.step if final else None
        except KeyboardInterrupt:
            return self.interrupted()
        if final_at != self.state.step:
            self.evaluate_and_save(final=True)
        self.reporter.finish(self.budget.seconds)
        return FitResult(
            self.state, False, self.last_eval, self.metrics.records, self.budget.seconds
        )

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
            self.task,
            self.scaler,
            self.device,
            self.precision,
            self.dist,
        )
        if self.config.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            trainable = [p for p in self.model.parameters() if p.requires_grad]
            torch.nn.utils.clip_grad_norm_(trainable, self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        tokens = self.task.count_tokens(batches) * self.dist.world_size
        self.state.step, self.state.tokens = step + 1, self.state.tokens + tokens
        self.throughput.add(tokens)
        return self.finite(self.dist.mean(loss).item())

    def evaluate_and_save(self, final: bool = False) -> None:
        """Rank 0 evaluates, checkpoints and plots while the other processes wait.

        `final`: the run's last evaluation, which a task may make fuller than the
        ones before it (`Task.evaluate_final`). An evaluation at an interval step
        is the last if the budget is spent there in any process; if training
        stops at another step (time ran out during that evaluation, or went on
        after it), a last one follows there.
        """
        evaluate = self.task.evaluate_final if final else self.task.evaluate
        if self.dist.is_main:
            with self.budget.phase("evaluation"):
                self.model.eval()
                with torch.no_grad(), autocast(self.device, self.precision):
                    metrics, sample = evaluate(self.model, self.state.step)
                self.model.train()
                self.last_eval = {
                    "type": "eval",
                    "step": self.state.step,
                    "tokens": self.state.tokens,
                    **metrics,
                    "elapsed": self.budget.elapsed(),
                }
                self.metrics.append(self.last_eval)
                self.reporter.evaluation(self.last_eval, sample)
                if self.task.score(metrics) < self.state.best_score:
                    self.state.best_score = self.task.score(metrics)
                    self.save("best")
                self.save("last")
                plot_losses(self.metrics.records, self.run_dir / "loss.png")
        self.dist.barrier()

    # ------------------------------------------------------------------ pieces
    def compile_setting(self) -> str:
        """on or off. Pre-training resolves `auto` before the run (compilation.py); a task
        that leaves it (fine-tuning: batches of varying length, each a new shape to
        compile for) trains eager unless asked with --compile on."""
        return "on" if self.config.compile == "on" else "off"

    @property
    def eval_interval(self) -> int:
        return self.config.eval_interval or self.config.max_steps or 1

    def agree_to_stop(self, interrupts: Interrupts) -> bool:
        """Whether every process leaves the loop before this step: the budget is spent in
        any of them, or Ctrl-C reached any of them (KeyboardInterrupt, at the same step
        everywhere, so no process is left waiting in a collective)."""
        spent = self.budget.spent(self.state) >= 1.0
        done, interrupted = self.dist.agree(spent, interrupts.requested)
        if interrupted:
            raise KeyboardInterrupt
        return done

    def log(self, loss: float, lr: float) -> None:
        """A step record at step 1, every log_interval steps, and at the last step.

        The last one matters when the budget is not a multiple of log_interval:
        without it, the record (and the reporter's progress bar) would stop short
        of the end, at 89 % of a 45-step run logged every 10 steps.
        """
        step, progress = self.state.step, self.budget.spent(self.state)
        due = step % self.config.log_interval == 0 or step == 1 or progress >= 1
        if not self.dist.is_main or not due:
            return
        record = {"type": "step", "step": step, "tokens": self.state.tokens, "loss": loss, "lr": lr}
        record |= self.task.step_metrics() | self.throughput.read()
        record["elapsed"] = self.budget.elapsed()
        record["progress"] = progress
        self.metrics.append(record)
        self.reporter.step(record)

    def save(self, which: str) -> None:
        self.state.elapsed = self.budget.elapsed()
        if which == "best":
            save_checkpoint(self.run_dir / which, self.task.export(self.model), asdict(self.state))
        else:
            save_training(
                self.run_dir / which, self.model, asdict(self.state), self.optimizer, self.scaler
            )

    def interrupted(self) -> FitResult:
        """Ctrl-C: keep the work done so far in `last/`, to continue with --resume."""
        if self.dist.is_main:
            self.reporter.finish(self.budget.seconds)
            self.save("last")
            self.reporter.message(
                f"interrupted at step {self.state.step}: saved "
                f"{self.run_dir / 'last'}; continue with {setting('resume', True)}"
            )
        self.dist.barrier()
        return FitResult(
            self.state, True, self.last_eval, self.metrics.records, self.budget.seconds
        )

    def finite(self, loss: float) -> float:
        if math.isfinite(loss):
            return loss
        last = self.run_dir / "last"
        where = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint yet"
        raise TrainingError(
            f"the loss became {loss} at step {self.state.step}; {where}; "
            f"lower the learning rate ({setting('learning_rate')}) or use "
            f"{setting('precision', 'bf16')} or fp32"
        )
