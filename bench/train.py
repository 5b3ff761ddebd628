"""Benchmark slm-train's training loop, in one run on this machine.

    uv run python bench/train.py                 # everything, about 20 minutes on 2 CPU cores
    uv run python bench/train.py --minutes 0     # skip the 10-minute learning-curve run
    uv run python bench/train.py --nanogpt ~/src/nanoGPT   # with nanoGPT's model.py beside slm

Prints:
1. tokens/s of `slm_train.train` (the engine) against a minimal plain-PyTorch loop over the
   same model, the same batches and the same AdamW settings: the overhead of
   everything the library adds (scheduling, logging, accumulation plumbing);
2. the default run's model and batch (`qwen3-small`, Muon) in fp32 and bf16, with
   `torch.compile` off and on: tokens/s and MFU against this machine's measured peak
   (slm_train/peak.py) in that precision;
3. slm's `GPTModel` against nanoGPT's `model.py` (a local checkout, --nanogpt: its code is
   loaded from there, never copied into slm) in the same minimal loop on the same
   shapes (the GPT-2 `small` preset, whose architecture nanoGPT's is), fp32 and bf16;
4. the validation loss the default run reaches on the built-in corpus
   after each minute of training.

Throughput is the median step time over --steps steps (after warm-up steps); each
variant is measured --rounds times, the variants alternating (interleaved), and the
median round is kept, so a noisy neighbour on a shared machine does not decide a
comparison. The first steps of a compiled run include its compilation: the warm-up
steps are not timed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from slm_model import GPTModel, get_gpt_config
from slm_train import (
    RandomWindows,
    Reporter,
    TrainConfig,
    autocast,
    make_optimizer,
    prepare,
    resolve_precision,
    train,
)
from slm_train.metrics import flops_per_token
from slm_train.peak import peak_flops

WARMUP = 3
CPU = torch.device("cpu")


def library_speed(data, base: TrainConfig, steps: int, **changes) -> tuple[float, float | None]:
    """Median tokens/s and MFU of slm_train.train itself, read from its per-step records."""
    with tempfile.TemporaryDirectory() as out:
        config = base.replace(
            out_dir=out,
            max_steps=WARMUP + steps,
            max_time=None,
            eval_interval=10**9,
            log_interval=1,
            sample_tokens=0,
            eval_batches=1,
            **changes,
        )
        result = train(config, data=data)
    records = [r for r in result.history if r["type"] == "step" and r["step"] > WARMUP]
    mfu = [r["mfu"] for r in records if "mfu" in r]
    speed = statistics.median(r["tokens_per_s"] for r in records)
    return speed, statistics.median(mfu) if mfu else None


def plain_speed(model, data, base: TrainConfig, steps: int, precision: str = "fp32") -> float:
    """Tokens/s of the same training in the fewest lines of PyTorch: the reference for the
    engine's overhead, and the loop slm's and nanoGPT's models are compared in."""
    block = model.config.block_size
    optimizer = make_optimizer(model, base.replace(optimizer="adamw"), CPU)
    windows = RandomWindows(data.tokens("train"), block, base.batch_size, base.seed)
    times = []
    for step in range(WARMUP + steps):
        start = time.perf_counter()
        x, y = (t.contiguous() for t in windows.batch(step, 0))  # nanoGPT's loss .view()s y
        with autocast(CPU, precision):
            _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), base.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()
        times.append(time.perf_counter() - start)
    return base.batch_size * block / statistics.median(times[WARMUP:])


def slm_model(data, preset: str):
    torch.manual_seed(0)
    vocab = data.meta["tokenizer"]["vocab_size"]
    return GPTModel(get_gpt_config(preset, vocab_size=vocab, dropout=0.0))


def nanogpt_model(path: Path, like: GPTModel):
    """nanoGPT's GPT from its own model.py, with slm's model's shapes."""
    spec = importlib.util.spec_from_file_location("nanogpt_model", path / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    c = like.config
    torch.manual_seed(0)
    model = module.GPT(
        module.GPTConfig(
            block_size=c.block_size,
            vocab_size=c.vocab_size,
            n_layer=c.n_layer,
            n_head=c.n_head,
            n_embd=c.n_embd,
            dropout=0.0,
            bias=c.bias,
        )
    )
    return model


def interleaved(rounds: int, variants: dict) -> dict:
    """Each variant measured `rounds` times, alternating; the median round of each."""
    results: dict = {name: [] for name in variants}
    for _ in range(rounds):
        for name, measure in variants.items():
            results[name].append(measure())
    return {name: _median(values) for name, values in results.items()}


def _median(values: list):
    if isinstance(values[0], tuple):  # (tokens/s, MFU): the round with the median speed
        return sorted(values, key=lambda v: v[0])[len(values) // 2]
    return statistics.median(values)


def table(title: str, results: dict, mfu_of=None) -> None:
    """tokens/s, the ratio to the first row, and MFU (given, or `mfu_of(name, tokens/s)`)."""
    print(title)
    print(f"{'variant':<40}{'tokens/s':>12}{'ratio':>10}{'MFU':>9}")
    rows = {k: v if isinstance(v, tuple) else (v, None) for k, v in results.items()}
    baseline = next(iter(rows.values()))[0]
    for name, (speed, mfu) in rows.items():
        mfu = mfu if mfu is not None else (mfu_of(name, speed) if mfu_of else None)
        shown = f"{mfu:>9.1%}" if mfu else f"{'-':>9}"
        print(f"{name:<40}{speed:>12,.0f}{speed / baseline:>9.3f}x{shown}")
    print()


class LearningCurve(Reporter):
    """Prints each evaluation: minutes trained, step, validation loss, a sample."""

    def __init__(self) -> None:
        self.points: list[tuple[float, int, float]] = []

    def evaluation(self, record, sample):
        self.points.append((record["elapsed"], record["step"], record["val_loss"]))
        print(
            f"  {record['elapsed'] / 60:5.1f} min  step {record['step']:>5}  val loss "
            f"{record['val_loss']:.3f}  sample {sample!r:.80}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description="slm-train loop benchmark")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--minutes", type=float, default=10, help="length of the learning-curve run"
    )
    parser.add_argument("--nanogpt", type=Path, help="a nanoGPT checkout, for its model.py")
    parser.add_argument("--skip", nargs="*", default=[], choices=["overhead", "default"])
    parser.add_argument("--curve-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.curve_only:
        learning_curve(args.minutes)
        return

    default = TrainConfig()  # the defaults: qwen3-small, Muon, bpe:4096 on builtin:bbe, batch 16
    print(
        f"# slm-train benchmark: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    data = prepare(default.data, Path("data") / "bench-bbe-bpe4096", default.tokenizer)
    block = get_gpt_config(default.preset).block_size
    print(
        f"preset {default.preset!r}, batch {default.batch_size} x {block} tokens, "
        f"{data.meta['train_tokens']:,} training tokens\n"
    )
    if "overhead" not in args.skip:
        overhead_section(data, default.replace(precision="fp32"), args)
    if "default" not in args.skip:
        default_model_section(data, default, args)
    nanogpt_section(data, default, args)
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")

    if args.minutes > 0:
        # In a fresh process: a long run after many short ones in this process measured
        # less than half the speed it reaches on its own.
        sys.stdout.flush()
        command = [sys.executable, __file__, "--curve-only", "--minutes", str(args.minutes)]
        subprocess.run(command, check=True)


def overhead_section(data, base: TrainConfig, args) -> None:
    results = interleaved(
        args.rounds,
        {
            "plain PyTorch loop (AdamW)": lambda: plain_speed(
                slm_model(data, base.preset), data, base, args.steps
            ),
            "slm_train (engine, AdamW)": lambda: library_speed(
                data, base, args.steps, optimizer="adamw"
            ),
        },
    )
    table("## loop overhead (fp32)", results)


def default_model_section(data, default: TrainConfig, args) -> None:
    """The default run's model, batch and optimizer: fp32 and bf16, eager and compiled."""
    variants = {
        f"{precision}, {'compiled' if compiled == 'on' else 'eager'}": (
            lambda p=precision, c=compiled: library_speed(
                data, default, args.steps, precision=p, compile=c
            )
        )
        for compiled in ("off", "on")
        for precision in ("fp32", "bf16")
    }
    table(
        f"## the default run ({default.preset}, {default.optimizer})",
        interleaved(args.rounds, variants),
    )


def nanogpt_section(data, default: TrainConfig, args) -> None:
    """slm's GPTModel against nanoGPT's model.py: same shapes, same loop, same batches."""
    if args.nanogpt is None or not (args.nanogpt / "model.py").is_file():
        print(
            "## slm against nanoGPT: skipped (give --nanogpt PATH, a nanoGPT checkout with "
            "its model.py; slm does not ship nanoGPT's code)\n"
        )
        return
    base = default.replace(preset="small", optimizer="adamw")
    ours = slm_model(data, base.preset)
    per_token = flops_per_token(ours)
    variants = {}
    for precision in ("fp32", "bf16"):
        variants[f"slm GPTModel, {precision}"] = lambda p=precision: plain_speed(
            slm_model(data, base.preset), data, base, args.steps, p
        )
        variants[f"nanoGPT model.py, {precision}"] = lambda p=precision: plain_speed(
            nanogpt_model(args.nanogpt, ours), data, base, args.steps, p
        )

    def mfu(name: str, speed: float) -> float | None:
        peak = peak_flops(CPU, name.rpartition(", ")[2])
        return speed * per_token / peak if peak else None

    title = f"## slm against nanoGPT ({base.preset} shapes, plain loop, AdamW, eager)"
    table(title, interleaved(args.rounds, variants), mfu)


def learning_curve(minutes: float) -> None:
    default = TrainConfig()
    chosen = resolve_precision(default.precision, torch.device("cpu"))
    print(f"## learning curve: the default small run ({chosen}) for {minutes:g} minutes")
    data = prepare(default.data, Path("data") / "bench-bbe-bpe4096", default.tokenizer)
    # Evaluate about once a minute: measure the speed first, then convert a minute to steps.
    tokens_per_step = default.batch_size * get_gpt_config(default.preset).block_size
    steps_per_minute = library_speed(data, default, 10)[0] / tokens_per_step * 60
    curve = LearningCurve()
    with tempfile.TemporaryDirectory() as out:
        config = default.replace(
            out_dir=out,
            max_steps=None,
            max_time=minutes * 60,
            eval_interval=max(1, round(steps_per_minute)),
        )
        result = train(config, data=data, reporter=curve)
    steps = [r for r in result.history if r["type"] == "step"]
    speed = statistics.median(r["tokens_per_s"] for r in steps)
    print(f"  {result.step} steps, {result.tokens:,} tokens, median {speed:,.0f} tokens/s")
    print()


if __name__ == "__main__":
    main()
