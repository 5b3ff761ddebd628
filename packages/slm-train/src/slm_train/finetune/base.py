"""What the fine-tunings (classification, instructions, chat) share.

All start from a pre-trained model (a run's `best/`, or GPT-2 weights), all
read epochs of shuffled examples, and all write an ordinary run directory
that the rest of slm understands. Instruction and chat tuning also share a
task: next-token loss on padded batches whose targets are -100 where nothing
is learned (`NextTokenTask`). The training itself is the engine's
(`engine.Trainer`), so fine-tuning gets gradient accumulation, mixed
precision with a gradient scaler, DDP, clipping, warm-up + cosine, exact
resume and Ctrl-C saving, exactly as pre-training does.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable
from copy import deepcopy
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import torch
from slm_model import GPTModel
from slm_tokenizer import BPETokenizer, gpt2
from torch import nn

from ..config import ConfigError, FinetuneConfig
from ..engine import Batch, FitResult, Task, Trainer, TrainingError
from ..evaluate import evaluate_loss
from ..lock import RunLock
from ..lora import merge_lora, trained_rows
from ..naming import setting
from ..report import Reporter
from ..run import Run, RunError
from ..runtime import Distributed

IGNORE_INDEX = -100  # a target the loss skips (PyTorch's cross_entropy default)


def load_base(config: FinetuneConfig, device: torch.device) -> tuple[GPTModel, BPETokenizer, str]:
    """The pre-trained model, its tokenizer and a description of where they came from."""
    if config.base_run is not None:
        run = Run(config.base_run)
        return run.load_model("best", device), run.tokenizer(), str(run.path)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        weights = load_file(str(config.gpt2_weights))
    except (SafetensorError, FileNotFoundError, OSError) as error:
        raise ConfigError(
            f"cannot read GPT-2 weights from {config.gpt2_weights} ({error})"
        ) from None
    model = GPTModel.from_gpt2_state_dict(weights, n_head=_saved_heads(config.gpt2_weights))
    return model.to(device), gpt2(), f"gpt2:{config.gpt2_weights}"


def disable_dropout(model: nn.Module) -> nn.Module:
    """Dropout off in every layer, in training mode too (TRL's `disable_dropout`).

    DPO and RL compare log-probabilities: the policy's with the reference's
    (computed without dropout), or the answers' with the weights that sampled
    them. Dropout would make those differ by noise alone, so that DPO starts
    away from log 2 and RL's samples are not the policy it steps."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        elif isinstance(getattr(module, "dropout", None), float):  # attention's SDPA rate
            module.dropout = 0.0
    return model


def _saved_heads(weights_file: str) -> int | None:
    """`n_head` from the config.json that transformers saves beside model.safetensors."""
    try:
        saved = json.loads((Path(weights_file).parent / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return saved.get("n_head") if isinstance(saved, dict) else None


class EpochOrder:
    """Which examples form micro-batch `index` of step `step`.

    Each epoch is a fresh shuffle (a function of seed and epoch, so resume is
    exact). A step takes `micro_batches` consecutive slices of `batch_size`;
    the last step of an epoch wraps around to the epoch's first examples, so
    every micro-batch is full: under DDP no process ever waits on an empty one.
    """

    def __init__(self, count: int, batch_size: int, micro_batches: int, seed: int) -> None:
        self.count, self.batch_size, self.micro_batches, self.seed = (
            count,
            batch_size,
            micro_batches,
            seed,
        )
        self.steps_per_epoch = math.ceil(count / (batch_size * micro_batches))
        self._cached: tuple[int, list[int]] | None = None

    def rows(self, step: int, index: int) -> list[int]:
        epoch, within = divmod(step, self.steps_per_epoch)
        order = self._order(epoch + 1)
        start = (within * self.micro_batches + index) * self.batch_size
        return [order[(start + j) % self.count] for j in range(self.batch_size)]

    def _order(self, epoch: int) -> list[int]:
        if self._cached is None or self._cached[0] != epoch:
            generator = torch.Generator().manual_seed(self.seed * 1000 + epoch)
            self._cached = (epoch, torch.randperm(self.count, generator=generator).tolist())
        return self._cached[1]


class NextTokenTask(Task):
    """Instruction and chat tuning: the language model's own loss, on what is to be learned.

    A batch is (inputs, targets) with targets -100 wherever nothing is
    learned (a prompt, another speaker's turn, padding), so the model's
    cross-entropy averages over the rest. "Best" is the lowest validation
    loss, and `best/` keeps plain weights (LoRA adapters merged). A subclass
    sets `config`, `encoded`, `val_encoded` and `order`, says how to
    `collate` its examples, and adds a sample to `evaluate`.
    """

    config: FinetuneConfig
    encoded: list
    val_encoded: list
    order: EpochOrder

    def collate(self, items: list) -> Batch:
        raise NotImplementedError

    @property
    def eval_steps(self) -> float:
        """An evaluation's cost in training steps, until the budget has timed one: forward
        passes over up to 256 training and every validation example (a step is about three
        passes over each of its micro-batches), and the sample. Evaluations come once an
        epoch, so under a time budget the first may be the last: without this estimate the
        budget kept one step's time for it, and the run overran by the evaluation."""
        examples = min(len(self.encoded), 256) + len(self.val_encoded)
        return examples / (3 * self.config.batch_size * self.config.grad_accum_steps) + 1

    def batch(self, step: int, index: int) -> Batch:
        return self.collate([self.encoded[r] for r in self.order.rows(step, index)])

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return model(*batch)[1]

    def count_targets(self, batch: Batch) -> int:
        """Replies differ in length, and prompts, other turns and padding are not targets."""
        return int((batch[1] != IGNORE_INDEX).sum())

    def losses(self, model: nn.Module, step: int) -> dict[str, float]:
        """The epoch, and the loss on (up to 256) training examples and on the validation set."""
        metrics = {"epoch": round(step / self.order.steps_per_epoch, 3)}
        for name, items in (("train", self.encoded[:256]), ("val", self.val_encoded)):
            if items:
                metrics[f"{name}_loss"] = self.mean_loss(model, items)
        return metrics

    def mean_loss(self, model: nn.Module, items: list) -> float:
        device, size = next(model.parameters()).device, self.config.batch_size
        batches = (self.collate(items[i : i + size]) for i in range(0, len(items), size))
        return evaluate_loss(model, batches, device)

    def score(self, metrics: dict[str, float]) -> float:
        return metrics.get("val_loss", metrics["train_loss"])

    def export(self, model: nn.Module) -> nn.Module:
        return merge_lora(deepcopy(model))


def loop_config(config: FinetuneConfig, order: EpochOrder) -> FinetuneConfig:
    """The engine's budget: `epochs` passes (or max_steps, if sooner), evaluated each epoch."""
    steps = config.epochs * order.steps_per_epoch
    return config.replace(
        max_steps=min(steps, config.max_steps or steps),
        eval_interval=config.eval_interval or order.steps_per_epoch,
    )


def open_finetune_run(
    config: FinetuneConfig,
    model: GPTModel,
    tokenizer: BPETokenizer,
    base: str,
    splits: tuple[list, list, list],
    extra: dict[str, Any],
    *,
    resume: bool,
    force: bool,
    dist: Distributed,
    data_info: dict[str, Any] | None = None,
) -> Run:
    """The fine-tuned run: a new directory recording base, data and split sizes (and
    `data_info`), or the one being resumed (which must be the same kind of fine-tuning).
    Rank 0 creates it."""
    if not resume and dist.is_main:
        _create_run(config, model, tokenizer, base, splits, extra, force, data_info or {})
    dist.barrier()
    run = Run(config.out_dir)
    if run.config.get("kind") != extra["kind"] or run.model_config != model.config:
        raise RunError(
            f"{run.path} is not a {extra['kind']} fine-tuning of this base model; "
            f"resume with the same settings, or choose another {setting('out_dir')}"
        )
    return run


def _create_run(config, model, tokenizer, base, splits, extra, force, more_data_info) -> Run:
    train_set, val_set, test_set = splits
    data_info = {"base": base, "source": config.data, "train": len(train_set)}
    data_info |= {"val": len(val_set), "test": len(test_set)} | more_data_info
    tokenizer_info = {"spec": "from base", "vocab_size": tokenizer.vocab_size}
    tokenizer_info["eot_id"] = tokenizer.eot_id
    with tempfile.TemporaryDirectory(prefix="slm-tokenizer-") as folder:
        tokenizer_file = tokenizer.save(Path(folder) / "tokenizer.json")
        return Run.create(
            config.out_dir,
            model_config=model.config,
            train_config=asdict(config),
            tokenizer_file=tokenizer_file,
            tokenizer_info=tokenizer_info,
            data_info=data_info,
            force=force,
            extra=extra,
        )


def run_finetuning(body, config: FinetuneConfig, *, force: bool, resume: bool, reporter):
    """Around a fine-tuning's own work (`body`): DDP set-up, the run's lock, and tear-down."""
    config.validate()
    dist = Distributed.from_environment(config.device)
    reporter = reporter if reporter is not None and dist.is_main else Reporter()
    try:
        with RunLock(config.out_dir, enabled=dist.is_main, create=not resume):
            return body(config, dist, force, resume, reporter)
    finally:
        dist.close()


def fit(
    model: nn.Module,
    task: Task,
    config: FinetuneConfig,
    run: Run,
    *,
    resume: bool,
    device: torch.device,
    precision: str,
    dist: Distributed,
    reporter: Reporter,
) -> FitResult:
    """Train with the engine; on resume, continue from the run's `last/` first."""
    trainer = Trainer(
        model,
        task,
        config,
        run.path,
        device=device,
        precision=precision,
        dist=dist,
        reporter=reporter,
    )
    if resume:
        trainer.resume(run.resume_checkpoint())
        if trainer.state.step >= config.max_steps:
            raise TrainingError(
                f"{run.path} already reached step {trainer.state.step}, the end of its "
                f"epochs; raise {setting('epochs')} to train it further"
            )
    return trainer.fit()


Outcome = TypeVar("Outcome")


def fit_then_test(
    model: nn.Module,
    task: Task,
    config: FinetuneConfig,
    run: Run,
    test: Callable[[FitResult], Outcome],
    unfinished: Callable[[FitResult], Outcome],
    *,
    resume: bool,
    device: torch.device,
    precision: str,
    dist: Distributed,
    reporter: Reporter,
) -> Outcome:
    """Train with the engine; then rank 0 alone tests the best weights (`test`), unless
    stopped by Ctrl-C. Every other outcome is `unfinished(result)`: under DDP the other
    processes' (no history, and no false Ctrl-C, which would end them with exit code 130
    and make torchrun stop rank 0), or an interrupted run's."""
    result = fit(
        model,
        task,
        config,
        run,
        resume=resume,
        device=device,
        precision=precision,
        dist=dist,
        reporter=reporter,
    )
    outcome = unfinished(result)
    if dist.is_main and not result.interrupted:
        outcome = test(result)
    dist.barrier()  # the other processes wait for rank 0's test: none leaves the group early
    return outcome


def append_metrics(run: Run, record: dict[str, Any]) -> None:
    """Add a record (the test scores) after the engine's step and evaluation records."""
    with open(run.path / "metrics.jsonl", "a", encoding="utf-8") as file:
        file.write(json.dumps(record) + "\n")


def describe_splits(splits: tuple[list, list, list]) -> str:
    return " / ".join(
        f"{len(part)} {name}" for part, name in zip(splits, ("train", "val", "test"), strict=True)
    )


def trainable_summary(model: nn.Module, what: str) -> str:
    unique = {id(p): p for p in model.parameters()}.values()
    trainable = sum(_trained_numbers(p) for p in unique if p.requires_grad)
    total = sum(p.numel() for p in unique)
    return f"{trainable:,} of {total:,} parameters ({what})"


def _trained_numbers(parameter: torch.Tensor) -> int:
    """How many numbers of a trainable parameter learn: its rows' if only some rows do."""
    rows = trained_rows(parameter)
    return parameter.numel() if rows is None else len(rows) * parameter[0].numel()
