"""Pre-training: the loop of the book's chapter 5 and nanoGPT's train.py, as a function.

One optimisation step:
1. set the learning rate: linear warm-up, then cosine decay to min_lr over the budget;
2. for each of grad_accum_steps micro-batches: forward, loss / grad_accum_steps,
   backward (gradients add up, so the step equals one on a batch that many times
   larger); under DDP the gradients are averaged across processes only after the
   last micro-batch;
3. clip the gradient norm, let AdamW update the weights.

Every eval_interval steps the train and validation losses are measured on the
same fixed batches, a sample is drawn, the `last` checkpoint is written (and
`best` when validation improved), and metrics.jsonl and loss.png are updated.

Exact resume: a step's batches and its dropout masks are functions of
(seed, rank, step), and the checkpoint holds the weights, the optimizer and the
step, so a resumed run repeats the uninterrupted run's losses exactly (in fp32).

Run it under `torchrun --nproc_per_node N` and it trains with
DistributedDataParallel: each process draws different batches, and rank 0
evaluates, logs and writes checkpoints.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from slm_model import GPTModel, generate, get_gpt_config

from .checkpoint import save_checkpoint
from .config import ConfigError, TrainConfig
from .datasets import DataTooSmallError, RandomWindows
from .distributed import Distributed
from .files import write_jsonl_atomically
from .plot import plot_losses
from .prepare import PreparedData, prepare
from .report import Reporter
from .run import Run, RunError

# Peak dense bf16 throughput, for the MFU estimate (model FLOPs utilisation).
PEAK_FLOPS = {
    "H200": 989e12,
    "H100": 989e12,
    "A100": 312e12,
    "L4": 121e12,
    "A10": 125e12,
    "4090": 165e12,
}


class TrainingError(RuntimeError):
    """Training cannot go on; the message says why and what to do."""


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    tokens: int
    best_val_loss: float
    last_val_loss: float | None
    elapsed: float
    interrupted: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


# --------------------------------------------------------------- small pieces
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} was asked for, but PyTorch sees no CUDA GPU; use --device cpu"
        )
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> str:
    """Pick a concrete precision for "auto".

    bf16 keeps fp32's range, so it needs no loss scaling; use it where the
    hardware computes it natively: most CUDA GPUs since Ampere, and CPUs with
    AVX512-BF16 or AMX (where it doubled training speed in bench/train.py).
    Older GPUs get fp16 with a gradient scaler; everything else fp32.
    """
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and _cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def _cpu_has_native_bf16() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            flags = next((line for line in file if line.startswith("flags")), "")
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Mixed precision: matmuls in bf16/fp16, weights and the optimizer in fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def learning_rate(config: TrainConfig, step: int, progress: float) -> float:
    """Linear warm-up over warmup_steps, then cosine decay from learning_rate to min_lr."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    if config.max_steps is not None and progress >= 1:
        return config.min_lr
    # Decay over the part of the budget left after warm-up.
    warm = config.warmup_steps / config.max_steps if config.max_steps else 0.0
    decay = min(1.0, max(0.0, (progress - warm) / max(1e-9, 1 - warm)))
    return config.min_lr + 0.5 * (1 + math.cos(math.pi * decay)) * (
        config.learning_rate - config.min_lr
    )


def make_optimizer(model: GPTModel, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices only: not on biases, norms or embeddings."""
    embeddings = {id(model.tok_emb.weight), id(model.pos_emb.weight)}
    decay, no_decay = [], []
    for parameter in {id(p): p for p in model.parameters() if p.requires_grad}.values():
        (decay if parameter.dim() >= 2 and id(parameter) not in embeddings else no_decay).append(
            parameter
        )
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = device.type == "cuda"
    return torch.optim.AdamW(
        groups, lr=config.learning_rate, betas=(config.beta1, config.beta2), fused=fused
    )


def flops_per_token(model: GPTModel) -> float:
    """Forward + backward FLOPs per token (PaLM appendix B, as nanoGPT estimates them)."""
    c = model.config
    return (
        6 * model.num_parameters(exclude_embeddings=True) + 12 * c.n_layer * c.n_embd * c.block_size
    )


def default_data_dir(data: str, tokenizer: str) -> Path:
    """data/<source>-<tokenizer>, e.g. data/builtin-bbe-bpe-4096: one folder per combination."""
    slug = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in f"{data}-{tokenizer}")
    return Path("data") / re.sub("-+", "-", slug).strip("-.")[:80]


def default_run_dir(config: TrainConfig) -> Path:
    return Path("runs") / f"{datetime.now():%Y%m%d-%H%M%S}-{config.preset}"


def accumulate_gradients(
    model: torch.nn.Module,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    scaler: torch.amp.GradScaler,
    device: torch.device,
    precision: str,
    distributed: bool = False,
) -> torch.Tensor:
    """Backward over micro-batches so the gradient equals that of their concatenation.

    Each micro-batch's mean loss is divided by their number, so the summed
    gradients are the gradient of the mean over all of them. Under DDP
    (`distributed`), gradients are averaged across processes only on the last
    micro-batch; the others skip that communication with `no_sync()`.
    Returns the mean loss (detached).
    """
    total = torch.zeros((), device=device)
    for index, (x, y) in enumerate(batches):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        last = index == len(batches) - 1
        with contextlib.nullcontext() if last or not distributed else model.no_sync():
            with autocast(device, precision):
                _, loss = model(x, y)
            scaler.scale(loss / len(batches)).backward()
        total += loss.detach()
    return total / len(batches)


@torch.no_grad()
def evaluate_loss(
    model: GPTModel,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    precision: str = "fp32",
) -> float:
    """Mean loss over batches, in eval mode (no dropout); restores the mode after.

    Targets of -100 are ignored, as in training (padding, masked prompts).
    """
    was_training = model.training
    model.eval()
    losses = []
    with autocast(device, precision):
        for x, y in batches:
            _, loss = model(x.to(device), y.to(device))
            losses.append(loss.item())
    model.train(was_training)
    if not losses:
        raise DataTooSmallError("no batches to evaluate: the data is smaller than one window")
    return float(np.mean(losses))


class MetricsLog:
    """metrics.jsonl, kept consistent with the checkpoint it belongs to."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        self.path = path
        self.records: list[dict[str, Any]] = []
        if resume_step is not None and path.is_file():
            # Drop what an interrupted run logged after its last checkpoint: it will be redone.
            lines = path.read_text(encoding="utf-8").splitlines()
            self.records = [
                r for r in map(json.loads, filter(None, lines)) if r["step"] <= resume_step
            ]
        write_jsonl_atomically(path, self.records)

    def append(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")


# ------------------------------------------------------------------ the loop
def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    force: bool = False,
    reporter: Reporter | None = None,
    data: PreparedData | None = None,
) -> TrainResult:
    """Train a model as `config` says; returns where the run is and how it went.

    Ctrl-C saves the `last` checkpoint and returns with `interrupted=True`.
    """
    config.validate()
    if resume and force:
        raise ConfigError("--resume continues a run and --force overwrites it; choose one")
    dist = Distributed.from_environment()
    try:
        return _train(config, dist, resume, force, reporter or Reporter(), data)
    finally:
        dist.close()


def _train(
    config: TrainConfig,
    dist: Distributed,
    resume: bool,
    force: bool,
    reporter: Reporter,
    data: PreparedData | None,
) -> TrainResult:
    device = dist.device if dist.enabled else resolve_device(config.device)
    config = config.replace(precision=resolve_precision(config.precision, device))
    if not dist.is_main:
        reporter = Reporter()
    run_dir = Path(config.out_dir) if config.out_dir else default_run_dir(config)
    if dist.enabled and not config.out_dir:
        run_dir = Path(dist.broadcast_object(str(run_dir)))

    # Data: rank 0 prepares (or reuses) it, the others wait and open it.
    data_dir = (
        Path(config.data_dir)
        if config.data_dir
        else default_data_dir(config.data, config.tokenizer)
    )
    if data is None:
        if dist.is_main:
            data = prepare(
                config.data,
                data_dir,
                config.tokenizer,
                config.val_fraction,
                progress=reporter.message,
            )
        dist.barrier()
        if data is None:
            data = prepare(config.data, data_dir, config.tokenizer, config.val_fraction)
    tokenizer = data.load_tokenizer()

    model_overrides = {"vocab_size": tokenizer.vocab_size, **config.model}
    try:
        model_config = get_gpt_config(config.preset, **model_overrides)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if model_config.vocab_size < tokenizer.vocab_size:
        raise ConfigError(
            f"model vocab_size {model_config.vocab_size} is smaller than the tokenizer's "
            f"{tokenizer.vocab_size}; leave vocab_size unset to match the tokenizer"
        )
    train_tokens, val_tokens = data.tokens("train"), data.tokens("val")
    block = model_config.block_size
    try:
        train_windows = RandomWindows(
            train_tokens, block, config.batch_size, config.seed, "training"
        )
        eval_windows = {
            "train": RandomWindows(
                train_tokens, block, config.batch_size, config.seed + 1, "training"
            ),
            "val": RandomWindows(
                val_tokens, block, config.batch_size, config.seed + 2, "validation"
            ),
        }
    except DataTooSmallError as error:
        raise DataTooSmallError(
            f"{error} (for example --model block_size={max(8, len(val_tokens) // 2)})"
        ) from None

    # The run directory: a new one, or the one being resumed.
    checkpoint = None
    if resume:
        run = Run(run_dir)
        _check_resumable(run, model_config, data)
        checkpoint = run.checkpoint("last")
    elif dist.is_main:
        run = Run.create(
            run_dir,
            model_config=model_config,
            train_config=config.to_dict(),
            tokenizer_file=data.tokenizer_path,
            tokenizer_info=data.meta["tokenizer"],
            data_info={
                "dir": str(data.directory),
                "source": data.meta["source"],
                "train_tokens": data.meta["train_tokens"],
                "val_tokens": data.meta["val_tokens"],
            },
            force=force,
        )
    dist.barrier()

    torch.manual_seed(config.seed)
    with torch.device(device):
        model = GPTModel(model_config)
    optimizer = make_optimizer(model, config, device)
    scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "fp16")
    step, tokens, best_val, elapsed_before = 0, 0, math.inf, 0.0
    if checkpoint is not None:
        checkpoint.load_weights(model)
        saved = checkpoint.optimizer_state()
        optimizer.load_state_dict(saved["optimizer"])
        scaler.load_state_dict(saved["scaler"])
        state = checkpoint.state
        step, tokens, best_val, elapsed_before = (
            state["step"],
            state["tokens"],
            state["best_val_loss"],
            state["elapsed"],
        )
        if step >= (config.max_steps or math.inf):
            raise TrainingError(
                f"{run_dir} already reached step {step}; raise --max-steps to train it further"
            )
    metrics = (
        MetricsLog(run_dir / "metrics.jsonl", step if resume else None) if dist.is_main else None
    )

    raw_model = model
    if config.compile:
        model = torch.compile(model)
    if dist.enabled:
        model = dist.wrap(model)

    tokens_per_step = config.batch_size * block * config.grad_accum_steps * dist.world_size
    flops = flops_per_token(raw_model)
    peak = next(
        (
            v
            for k, v in PEAK_FLOPS.items()
            if device.type == "cuda" and k in torch.cuda.get_device_name()
        ),
        None,
    )

    def progress_of(step: int, tokens: int, elapsed: float) -> float:
        fractions = [0.0]
        if config.max_steps:
            fractions.append(step / config.max_steps)
        if config.max_tokens:
            fractions.append(tokens / config.max_tokens)
        if config.max_time:
            fractions.append(elapsed / config.max_time)
        return min(1.0, max(fractions))

    def save(which: str, val_loss: float | None) -> None:
        state = {
            "step": step,
            "tokens": tokens,
            "best_val_loss": best_val,
            "elapsed": elapsed(),
            "val_loss": val_loss,
            "time": datetime.now().isoformat(timespec="seconds"),
        }
        optimizer_state = {"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict()}
        save_checkpoint(
            run_dir / which, raw_model, state, optimizer_state if which == "last" else None
        )

    def evaluate() -> tuple[dict[str, Any], str | None]:
        record: dict[str, Any] = {"type": "eval", "step": step, "tokens": tokens}
        for split, windows in eval_windows.items():
            batches = (windows.batch(i) for i in range(config.eval_batches))
            loss = evaluate_loss(raw_model, batches, device, config.precision)
            record[f"{split}_loss"] = loss
            record[f"{split}_perplexity"] = math.exp(min(loss, 50))
        sample = None
        if config.sample_tokens > 0 and tokenizer.eot_id is not None:
            generator = torch.Generator(device=device).manual_seed(config.seed + step)
            out = generate(
                raw_model,
                [tokenizer.eot_id],
                config.sample_tokens,
                temperature=0.8,
                top_k=40,
                eos_id=tokenizer.eot_id,
                generator=generator,
            )
            sample = tokenizer.decode(out[0, 1:].tolist()).replace("<|endoftext|>", "")
        return record, sample

    start_time = time.perf_counter()

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - start_time

    def evaluate_and_save() -> dict[str, Any] | None:
        """Rank 0 evaluates, checkpoints and plots while the other processes wait."""
        nonlocal best_val
        record = None
        if dist.is_main:
            record, sample = evaluate()
            record["elapsed"] = elapsed()
            metrics.append(record)
            reporter.evaluation(record, sample)
            if record["val_loss"] < best_val:
                best_val = record["val_loss"]
                save("best", record["val_loss"])
            save("last", record["val_loss"])
            plot_losses(metrics.records, run_dir / "loss.png")
        dist.barrier()
        return record

    c = model_config
    batch = f"{config.batch_size} x {block} tokens x {config.grad_accum_steps} accumulation"
    if dist.enabled:
        batch += f" x {dist.world_size} processes"
    reporter.start(
        {
            "run": str(run_dir),
            "data": f"{data.meta['source']} ({data.meta['train_tokens']:,} training tokens)",
            "tokenizer": f"{config.tokenizer} ({tokenizer.vocab_size:,} tokens)",
            "model": f"{config.preset}: {raw_model.num_parameters() / 1e6:.2f} M parameters, "
            f"{c.n_layer} layers, {c.n_head} heads, {c.n_embd} wide, context {block}",
            "device": f"{device} x {dist.world_size}, {config.precision}"
            + (", compiled" if config.compile else ""),
            "batch": f"{batch} = {tokens_per_step:,} tokens/step",
            "start step": step,
        }
    )

    model.train()
    last_eval: dict[str, Any] | None = None
    evaluated_at = None
    interrupted = False
    window_start, window_tokens = time.perf_counter(), 0
    try:
        while True:
            progress = progress_of(step, tokens, elapsed())
            if dist.agree_to_stop(progress >= 1.0):
                break
            lr = learning_rate(config, step, progress)
            for group in optimizer.param_groups:
                group["lr"] = lr
            torch.manual_seed(hash((config.seed, dist.rank, step)) % 2**63)  # dropout masks
            # Micro-batch g of the step's global batch: DDP with N processes and accumulation
            # A draws exactly the batches one process would draw with accumulation N * A.
            first = dist.rank * config.grad_accum_steps
            batches = [train_windows.batch(step, first + i) for i in range(config.grad_accum_steps)]
            mean_loss = accumulate_gradients(
                model, batches, scaler, device, config.precision, dist.enabled
            )
            if config.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(raw_model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            tokens += tokens_per_step
            window_tokens += tokens_per_step
            step_loss = dist.mean(mean_loss).item()
            if not math.isfinite(step_loss):
                where = run_dir / "last" if (run_dir / "last").exists() else None
                raise TrainingError(
                    f"the loss became {step_loss} at step {step}; "
                    + (
                        f"the last good checkpoint is {where}; "
                        if where
                        else "no checkpoint was written yet; "
                    )
                    + "lower the learning rate (--lr) or use --precision bf16 or fp32"
                )
            if metrics is not None and (step % config.log_interval == 0 or step == 1):
                now = time.perf_counter()
                speed = window_tokens / max(now - window_start, 1e-9)
                window_start, window_tokens = now, 0
                record = {
                    "type": "step",
                    "step": step,
                    "tokens": tokens,
                    "loss": step_loss,
                    "lr": lr,
                    "tokens_per_s": speed,
                    "elapsed": elapsed(),
                    "progress": progress_of(step, tokens, elapsed()),
                    "flops_per_s": speed * flops,
                }
                if peak:
                    record["mfu"] = speed * flops / peak
                metrics.append(record)
                reporter.step(record)
            if step % config.eval_interval == 0:
                last_eval, evaluated_at = evaluate_and_save(), step
    except KeyboardInterrupt:
        interrupted = True
        if dist.is_main:
            reporter.finish({})
            save("last", None)
            reporter.message(
                f"interrupted at step {step}: saved {run_dir / 'last'}; continue with --resume"
            )
    else:
        if evaluated_at != step:  # every process must agree, so not last_eval (rank 0's)
            last_eval = evaluate_and_save()
        reporter.finish({})
    dist.barrier()
    return TrainResult(
        run_dir=run_dir,
        step=step,
        tokens=tokens,
        best_val_loss=best_val,
        last_val_loss=last_eval["val_loss"] if last_eval else None,
        elapsed=elapsed(),
        interrupted=interrupted,
        history=metrics.records if metrics else [],
    )


def _check_resumable(run: Run, model_config, data: PreparedData) -> None:
    if run.config["tokenizer"]["sha256"] != data.meta["tokenizer"]["sha256"]:
        raise RunError(
            f"{run.path} was trained with another tokenizer than the data in {data.directory}; "
            "resume with the same --data and --tokenizer, or start a new run"
        )
    if run.model_config != model_config:
        raise RunError(
            f"{run.path} was trained with a different model ({run.model_config}); resume it with "
            "the same --preset and model settings, or start a new run"
        )
