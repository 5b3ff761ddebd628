"""Pre-training: prepare the data, build the model, open the run, hand over to the engine.

The book's chapter 5 and nanoGPT's train.py. What is special about
pre-training is only its `Task`: batches are random windows of the token files
(`RandomWindows`), the loss is next-token cross-entropy, and each evaluation
measures the loss on fixed train and validation batches and samples some text.
The loop itself is `engine.Trainer.fit`.

With `devices=N` (or under `torchrun --nproc_per_node N`) it trains with
DistributedDataParallel: each process draws different batches, and rank 0
prepares the data, evaluates, logs and writes checkpoints.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from slm_model import GPTConfig, GPTModel, generate, get_gpt_config
from slm_tokenizer import END_OF_TEXT, BPETokenizer

from .compilation import resolve_compile
from .config import DEFAULT_MAX_STEPS, DEFAULT_MAX_TIME, ConfigError, TrainConfig, read_toml
from .data.datasets import DataTooSmallError, RandomWindows
from .data.prepare import PreparedData, prepare_config
from .engine import Batch, Task, Trainer, TrainingError
from .evaluate import evaluate_loss
from .launch import on_devices
from .lock import RunLock
from .metrics import flops_per_token
from .naming import setting
from .report import Reporter
from .run import Run, RunError, latest_run
from .runtime import Distributed, resolve_precision

# `slm-cli train` with no budget at all: a small model in minutes on a laptop CPU.
BUDGETS = ("max_steps", "max_tokens", "max_time")
DEFAULT_BUDGET = {"max_steps": DEFAULT_MAX_STEPS, "max_time": DEFAULT_MAX_TIME}


def plan_training(
    overrides: dict[str, Any],
    *,
    config_file: str | Path | None = None,
    resume: bool = False,
    default_budget: dict[str, Any] = DEFAULT_BUDGET,
) -> TrainConfig:
    """The configuration a command line asks for.

    Resuming: the run's own settings (the run in `out_dir`, else the latest),
    changed only where `overrides` says. Otherwise: the TOML file's settings,
    then `overrides`.

    Budgets go as a set: the ones the command line names are all the budgets,
    else the file's (or the resumed run's), else `default_budget` (by default
    `DEFAULT_BUDGET`: 2000 steps or 8 minutes, whichever comes first). So
    `--max-time 2h` trains for two hours, not until a default step count, and
    `--resume --max-steps 4000` is not cut short by the first run's 8 minutes.
    """
    if resume:
        run = Run(overrides["out_dir"]) if overrides.get("out_dir") else latest_run()
        values, overrides = run.config["train"], {**overrides, "out_dir": str(run.path)}
    else:
        values = read_toml(config_file) if config_file else {}
    budgets = _budgets(overrides) or _budgets(values) or default_budget
    values = {**values, **overrides, **{name: budgets.get(name) for name in BUDGETS}}
    return TrainConfig.from_dict(values)


def _budgets(values: dict[str, Any]) -> dict[str, Any]:
    return {name: values[name] for name in BUDGETS if values.get(name) is not None}


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    tokens: int
    best_val_loss: float  # the validation loss of the evaluation kept as best/
    last_val_loss: float | None
    elapsed: float
    interrupted: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # preparation, training, evaluation


class PretrainTask(Task):
    """Next-token prediction on random windows; evaluation on fixed batches plus a sample.

    Evaluations before the last use only the first `interim_eval_batches` of
    the fixed batches of each split, and the last all `eval_batches`: a run
    spends its time training and still ends with the full measurement. The
    batches are the same windows every time, so `best/` stays sound: every
    evaluation, the last included, reports `shared_val_loss`, the loss on
    the first `interim_eval_batches` validation batches that all of them
    measure, and `best/` is the evaluation where that is lowest. (The last
    evaluation's `val_loss` is over all the batches, so it is not compared
    with the earlier ones' directly.)
    """

    def __init__(self, data: PreparedData, model: GPTModel, config: TrainConfig) -> None:
        self.config, self.tokenizer = config, data.load_tokenizer()
        self.flops_per_token = flops_per_token(model)
        self.interim_batches = min(config.interim_eval_batches or math.inf, config.eval_batches)
        # Forward passes over 2 x eval_batches batches; a step is ~3 passes per micro-batch.
        self.eval_steps = 2 * config.eval_batches / (3 * config.grad_accum_steps) + 1
        self.final_eval_cost = config.eval_batches / self.interim_batches
        block, batch, seed = model.config.block_size, config.batch_size, config.seed
        train, val = data.tokens("train"), data.tokens("val")
        try:
            self.windows = RandomWindows(train, block, batch, seed, "training")
            self.eval_windows = {
                "train": RandomWindows(train, block, batch, seed + 1, "training"),
                "val": RandomWindows(val, block, batch, seed + 2, "validation"),
            }
        except DataTooSmallError as error:
            raise DataTooSmallError(
                f"{error} (for example {setting('model', {'block_size': max(8, len(val) // 2)})})"
            ) from None

    def batch(self, step: int, index: int) -> Batch:
        return self.windows.batch(step, index)

    def loss(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        return model(*batch)[1]

    def evaluate(self, model: torch.nn.Module, step: int) -> tuple[dict[str, float], str | None]:
        return self.measure(model, self.interim_batches), self.sample(model, step)

    def evaluate_final(self, model: torch.nn.Module, step: int):
        return self.measure(model, self.config.eval_batches), self.sample(model, step)

    def score(self, metrics: dict[str, float]) -> float:
        return metrics.get("shared_val_loss", metrics["val_loss"])

    def measure(self, model: torch.nn.Module, batches: int) -> dict[str, float]:
        """Train and validation loss over the first `batches` fixed batches of each split.

        Every batch holds as many targets (full windows), so the loss over all
        of them is the mean of the shared part's and the rest's, by batch count.
        """
        device = next(model.parameters()).device
        metrics: dict[str, float] = {"eval_batches": batches}
        shared = self.interim_batches
        for split, windows in self.eval_windows.items():
            first = evaluate_loss(model, (windows.batch(i) for i in range(shared)), device)
            loss = first
            if batches > shared:
                more = (windows.batch(i) for i in range(shared, batches))
                loss = first * shared + evaluate_loss(model, more, device) * (batches - shared)
                loss /= batches
            metrics[f"{split}_loss"] = loss
            metrics[f"{split}_perplexity"] = math.exp(min(loss, 50))
            if split == "val":
                metrics["shared_val_loss"] = first
        return metrics

    def sample(self, model: torch.nn.Module, step: int) -> str | None:
        eot = self.tokenizer.eot_id
        if self.config.sample_tokens <= 0 or eot is None:
            return None
        device = next(model.parameters()).device
        generator = torch.Generator(device=device).manual_seed(self.config.seed + step)
        out = generate(
            model,
            [eot],
            self.config.sample_tokens,
            temperature=0.8,
            top_k=40,
            eos_id=eot,
            generator=generator,
        )
        return self.tokenizer.decode(out[0, 1:].tolist()).replace(END_OF_TEXT, "")


@on_devices
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
    With `config.devices > 1` it runs in that many processes (launch.py).
    """
    config.validate()
    if resume and force:
        raise ConfigError(
            f"{setting('resume', True)} continues a run and {setting('force', True)} overwrites "
            "it; choose one"
        )
    dist = Distributed.from_environment(config.device)
    reporter = reporter if reporter is not None and dist.is_main else Reporter()
    try:
        return _train(config, dist, resume, force, reporter, data)
    finally:
        dist.close()


def _train(config, dist, resume, force, reporter, data) -> TrainResult:
    started = time.perf_counter()  # the time budget covers data preparation too
    device = dist.resolve_device(config.device)
    config = config.replace(precision=resolve_precision(config.precision, device))
    data = data or prepare_data(config, dist, reporter)
    tokenizer = data.load_tokenizer()
    model_config = build_model_config(config, tokenizer)
    run_dir = _run_dir(config, dist)
    torch.manual_seed(config.seed)
    with torch.device(device):
        model = GPTModel(model_config)
    task = PretrainTask(data, model, config)  # checks the data fills a window, before the run
    config, compiled = decide_compile(config, task, device, dist)
    with RunLock(run_dir, enabled=dist.is_main, create=not resume):
        run = open_run(run_dir, config, model_config, data, dist, resume=resume, force=force)
        trainer = Trainer(
            model,
            task,
            config,
            run_dir,
            device=device,
            precision=config.precision,
            dist=dist,
            reporter=reporter,
            preparation=time.perf_counter() - started,
        )
        if resume:
            trainer.resume(run.resume_checkpoint())
            if trainer.state.step >= (config.max_steps or math.inf):
                raise TrainingError(
                    f"{run_dir} already reached step {trainer.state.step}; "
                    f"raise {setting('max_steps')} to train it further"
                )
        reporter.start(
            describe(config, model, tokenizer, data, device, dist, trainer.state.step, compiled)
        )
        reporter.message(f"run: {run_dir}")
        fit = trainer.fit()
    return TrainResult(
        run_dir=run_dir,
        step=fit.state.step,
        tokens=fit.state.tokens,
        best_val_loss=best_val_loss(fit.history, task, fit.state.best_score),
        last_val_loss=fit.last_eval["val_loss"] if fit.last_eval else None,
        elapsed=trainer.budget.elapsed(),
        interrupted=fit.interrupted,
        history=fit.history,
        seconds=fit.seconds,
    )


def best_val_loss(history: list[dict[str, Any]], task: PretrainTask, best_score: float) -> float:
    """The `val_loss` the evaluation kept as best/ reported (over all batches if it was the
    last), found by its score; the score itself if that evaluation is not in the history."""
    best = [r for r in history if r["type"] == "eval" and task.score(r) == best_score]
    return best[-1]["val_loss"] if best else best_score


def prepare_data(config: TrainConfig, dist: Distributed, reporter: Reporter) -> PreparedData:
    """Rank 0 prepares (or reuses) the token files; the other processes wait, then open them."""
    data = prepare_config(config, progress=reporter.message) if dist.is_main else None
    dist.barrier()
    return data or prepare_config(config)


def build_model_config(config: TrainConfig, tokenizer: BPETokenizer) -> GPTConfig:
    """The preset with the config's overrides, its vocabulary sized to the tokenizer."""
    try:
        model_config = get_gpt_config(
            config.preset, **{"vocab_size": tokenizer.vocab_size, **config.model}
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if model_config.vocab_size < tokenizer.vocab_size:
        raise ConfigError(
            f"model vocab_size {model_config.vocab_size} is smaller than the tokenizer's "
            f"{tokenizer.vocab_size}; leave vocab_size unset to match the tokenizer"
        )
    return model_config


def _run_dir(config: TrainConfig, dist: Distributed) -> Path:
    if config.out_dir:
        return Path(config.out_dir)
    run_dir = Path("runs") / f"{datetime.now():%Y%m%d-%H%M%S}-{config.preset}"
    return Path(dist.broadcast_object(str(run_dir)))


def open_run(run_dir, config, model_config, data, dist, *, resume: bool, force: bool) -> Run:
    """The run being resumed (checked against the data and model), or a new one (rank 0)."""
    if resume:
        run = Run(run_dir)
        _check_resumable(run, model_config, data)
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
    return run if resume or dist.is_main else Run(run_dir)


def _check_resumable(run: Run, model_config: GPTConfig, data: PreparedData) -> None:
    if run.config["tokenizer"]["sha256"] != data.meta["tokenizer"]["sha256"]:
        raise RunError(
            f"{run.path} was trained with another tokenizer than the data in {data.directory}; "
            f"resume with the same {setting('data')} and {setting('tokenizer')}, or start a new run"
        )
    if run.model_config != model_config:
        raise RunError(
            f"{run.path} was trained with a different model ({run.model_config}); resume it with "
            f"the same {setting('preset')} and model settings, or start a new run"
        )


def decide_compile(config, task, device, dist) -> tuple[TrainConfig, str]:
    """The config with `compile` on or off (config.json records what was done, as it
    does the precision), and why, for the summary: compilation.resolve_compile."""
    tokens = config.batch_size * config.grad_accum_steps * dist.world_size
    tokens *= task.windows.block_size
    choice, why = resolve_compile(config, device, task.flops_per_token, tokens)
    return config.replace(compile=choice), why


def describe(config, model, tokenizer, data, device, dist, step, compiled="") -> dict[str, Any]:
    """The table printed before training starts (`compiled`: decide_compile's reason)."""
    c = model.config
    batch = f"{config.batch_size} x {c.block_size} tokens x {config.grad_accum_steps} accumulation"
    if dist.enabled:
        batch += f" x {dist.world_size} processes"
    per_step = config.batch_size * c.block_size * config.grad_accum_steps * dist.world_size
    return {
        "data": f"{data.meta['source']} ({data.meta['train_tokens']:,} training tokens)",
        "tokenizer": f"{config.tokenizer} ({tokenizer.vocab_size:,} tokens)",
        "model": f"{config.preset}: {model.num_parameters() / 1e6:.2f} M parameters, "
        f"{c.n_layer} layers, {c.n_head} heads, {c.n_embd} wide, context {c.block_size}",
        "device": f"{device} x {dist.world_size}, {config.precision}"
        + (f", {compiled}" if compiled else ""),
        "batch": f"{batch} = {per_step:,} tokens/step",
        "start step": step,
    }
