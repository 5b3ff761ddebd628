"""Whether to compile the model with torch.compile: `--compile auto|on|off`.

Where it sits: pre-training resolves `auto` to on or off before the run is
opened (so config.json records what was done, as it does for `precision`),
and prints the reason in the run's summary; the engine compiles when the
setting is on (fine-tuning, whose batches vary in length, leaves `auto` eager).

Why a rule and not always: compilation is paid up front and returned per
step. On a 2-core AMD EPYC (AVX512-BF16), `qwen3-small` in bf16 took about
40 s to compile and then trained 1.39x faster (issue 26; docs/benchmarks.md).
A run of T seconds then trains (T - 40) x 1.39 worth of eager seconds, which
beats T from about 143 s on; `auto` asks for 10 % more tokens, about 190 s.
A step (or token) budget is turned into seconds with the step's FLOPs and the
machine's measured peak (peak.py) at the eager share of it measured with those
numbers. Evaluation and sampling run the uncompiled module, so they never
trigger a recompilation (tests/train/test_train_compile.py checks it).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import platform
import shutil
from typing import Any

import torch

from .peak import peak_flops

COMPILE_SECONDS = 40.0  # measured (see above)
COMPILE_SPEEDUP = 1.39  # compiled over eager steps/s, steady state (see above)
# The eager default run's share of the bf16 peak, in metrics.flops_per_token's count:
# issue 26 measured 21-25 % with the count before it included the tied output layer
# (x 1.29 for qwen3-small), so about 28 %.
EAGER_MFU = 0.28
MIN_GAIN = 1.10  # compile only for at least 10 % more tokens in the same time


def break_even_seconds(gain: float = MIN_GAIN) -> float:
    """The budget from which compiling trains `gain` times the eager tokens: (T - C) s = gain T."""
    return COMPILE_SECONDS * COMPILE_SPEEDUP / (COMPILE_SPEEDUP - gain)


def resolve_compile(
    config: Any, device: torch.device, flops_per_token: float, tokens_per_step: int
) -> tuple[str, str]:
    """`config.compile` made concrete: ("on" or "off", the reason, for the run's summary).

    `config` is a LoopConfig with its precision resolved; the FLOPs and tokens
    of a step turn a step or token budget into seconds.
    """
    if config.compile != "auto":
        done = "compiled" if config.compile == "on" else "not compiled"
        return config.compile, f"{done} (--compile {config.compile})"
    missing = compiler_missing(device)
    if missing:
        return "off", f"not compiled: {missing}"
    seconds = estimated_seconds(config, device, flops_per_token, tokens_per_step)
    needed = break_even_seconds()
    if seconds is None:
        return "off", "not compiled: the run's length cannot be estimated (give --max-time)"
    if seconds < needed:
        return "off", f"not compiled: ~{seconds:.0f} s is too short to repay {needed:.0f} s"
    return "on", f"compiled: ~{seconds:.0f} s repays ~{COMPILE_SECONDS:.0f} s of compiling"


def estimated_seconds(
    config: Any, device: torch.device, flops_per_token: float, tokens_per_step: int
) -> float | None:
    """How long the budget lasts in eager mode: max_time, or the steps' expected time."""
    limits = [config.max_time] if config.max_time else []
    steps = [config.max_steps] if config.max_steps else []
    if config.max_tokens:
        steps.append(config.max_tokens / max(1, tokens_per_step))
    peak = peak_flops(device, config.precision) if steps else None
    if peak:
        step_seconds = flops_per_token * tokens_per_step / (EAGER_MFU * peak)
        limits.append(min(steps) * step_seconds)
    return min(limits) if limits else None


def compiler_missing(device: torch.device) -> str | None:
    """Why torch.compile cannot run here, or None: inductor writes C++ for CPUs and
    Triton kernels for GPUs, so it needs a C++ compiler or Triton."""
    if platform.system() == "Windows":
        return "torch.compile is not set up on Windows here (use --compile on to try)"
    if device.type == "cuda":
        return None if importlib.util.find_spec("triton") else "Triton is not installed"
    if device.type != "cpu":
        return f"torch.compile is experimental on {device.type}"
    names = [os.environ.get("CXX"), "g++", "c++", "clang++"]
    if not any(shutil.which(name) for name in names if name):
        return "no C++ compiler found (install g++, or set CXX)"
    return None


def maybe_compile(model: torch.nn.Module, setting: str) -> torch.nn.Module:
    """The module to train: compiled when `setting` is on, else `model` itself.

    Inductor's C++ builder warns "No CUDA runtime is found" on every CPU-only
    machine (a CUDA build of torch without a GPU): noise in the progress
    display, so that one logger is quietened to errors."""
    if setting != "on":
        return model
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    return torch.compile(model)
