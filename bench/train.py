"""Benchmark slm-train's training loop, in one run on this machine.

    uv run python bench/train.py                 # everything, about 15 minutes on 2 CPU cores
    uv run python bench/train.py --minutes 0     # skip the 10-minute learning-curve run

Prints:
1. tokens/s of `slm_train.train` (the engine) against a minimal plain-PyTorch loop over the
   same model, the same batches and the same AdamW settings: the overhead of
   everything the library adds (scheduling, logging, accumulation plumbing);
2. slm_train with fp32 vs bf16 autocast, and with `torch.compile` off vs on;
3. the validation loss the default `small` run reaches on the built-in corpus
   after each minute of training.

Throughput is the median step time over --steps steps (after warm-up steps),
and each variant keeps its best of --rounds rounds, the variants alternating,
so a noisy neighbour on a shared machine does not decide a comparison.
"""

from __future__ import annotations

import argparse
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
    make_optimizer,
    prepare,
    resolve_precision,
    train,
)

WARMUP = 3


def library_steps_per_s(data, base: TrainConfig, steps: int, **changes) -> float:
    """Median steps/s of slm_train.train itself, read from its per-step timing records."""
    with tempfile.TemporaryDirectory() as out:
        config = base.replace(
            out_dir=out,
            max_steps=WARMUP + steps,
            eval_interval=10**9,
            log_interval=1,
            sample_tokens=0,
            eval_batches=1,
            **changes,
        )
        result = train(config, data=data)
    speeds = [
        r["tokens_per_s"] for r in result.history if r["type"] == "step" and r["step"] > WARMUP
    ]
    tokens_per_step = config.batch_size * get_gpt_config(config.preset).block_size
    return statistics.median(speeds) / tokens_per_step


def plain_steps_per_s(data, base: TrainConfig, steps: int) -> float:
    """The same training in the fewest lines of PyTorch: the reference for the overhead."""
    torch.manual_seed(base.seed)
    config = get_gpt_config(base.preset, vocab_size=data.meta["tokenizer"]["vocab_size"])
    model = GPTModel(config)
    optimizer = make_optimizer(model, base, torch.device("cpu"))
    windows = RandomWindows(data.tokens("train"), config.block_size, base.batch_size, base.seed)
    times = []
    for step in range(WARMUP + steps):
        start = time.perf_counter()
        x, y = windows.batch(step, 0)
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), base.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()
        times.append(time.perf_counter() - start)
    return 1 / statistics.median(times[WARMUP:])


def best_of(rounds: int, variants: dict) -> dict[str, float]:
    best = dict.fromkeys(variants, 0.0)
    for _ in range(rounds):
        for name, measure in variants.items():
            best[name] = max(best[name], measure())
    return best


def table(title: str, results: dict[str, float], tokens_per_step: int) -> None:
    print(title)
    baseline = next(iter(results.values()))
    print(f"{'variant':<36}{'tokens/s':>12}{'ratio':>10}")
    for name, steps_per_s in results.items():
        print(f"{name:<36}{steps_per_s * tokens_per_step:>12,.0f}{steps_per_s / baseline:>9.3f}x")
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
    parser.add_argument("--curve-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.curve_only:
        learning_curve(args.minutes)
        return

    default = TrainConfig()  # the defaults: small preset, bpe:4096 on builtin:bbe, batch 16
    base = default.replace(precision="fp32")  # comparisons run in fp32 unless they vary it
    print(
        f"# slm-train benchmark: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}"
    )
    data = prepare(base.data, Path("data") / "bench-bbe-bpe4096", base.tokenizer)
    model_config = get_gpt_config(base.preset, vocab_size=data.meta["tokenizer"]["vocab_size"])
    tokens_per_step = base.batch_size * model_config.block_size
    print(
        f"preset {base.preset!r}, batch {base.batch_size} x {model_config.block_size} tokens, "
        f"{data.meta['train_tokens']:,} training tokens\n"
    )

    overhead = best_of(
        args.rounds,
        {
            "plain PyTorch loop": lambda: plain_steps_per_s(data, base, args.steps),
            "slm_train (engine)": lambda: library_steps_per_s(data, base, args.steps),
        },
    )
    table("## loop overhead (fp32)", overhead, tokens_per_step)
    precision = best_of(
        args.rounds,
        {
            "fp32": lambda: library_steps_per_s(data, base, args.steps),
            "bf16 autocast": lambda: library_steps_per_s(data, base, args.steps, precision="bf16"),
        },
    )
    table("## precision", precision, tokens_per_step)
    compiled = best_of(
        args.rounds,
        {
            "eager": lambda: library_steps_per_s(data, base, args.steps),
            "torch.compile": lambda: library_steps_per_s(data, base, args.steps, compile=True),
        },
    )
    table("## torch.compile (fp32)", compiled, tokens_per_step)

    if args.minutes > 0:
        # In a fresh process: a long run after many short ones in this process measured
        # less than half the speed it reaches on its own.
        sys.stdout.flush()
        command = [sys.executable, __file__, "--curve-only", "--minutes", str(args.minutes)]
        subprocess.run(command, check=True)


def learning_curve(minutes: float) -> None:
    default = TrainConfig()
    chosen = resolve_precision(default.precision, torch.device("cpu"))
    print(f"## learning curve: the default small run ({chosen}) for {minutes:g} minutes")
    data = prepare(default.data, Path("data") / "bench-bbe-bpe4096", default.tokenizer)
    # Evaluate about once a minute: measure the speed first, then convert a minute to steps.
    steps_per_minute = library_steps_per_s(data, default, 10) * 60
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
