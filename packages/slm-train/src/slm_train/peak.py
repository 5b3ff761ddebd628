"""The machine's peak FLOP/s, the denominator of MFU (model FLOPs utilisation).

Where it sits: metrics.Throughput divides a run's FLOP/s by this, so
metrics.jsonl, `slm-cli info` and the report card show MFU; compilation.py
uses it to estimate how long a step budget will take.

GPUs publish their peak, so a table serves them (`GPU_PEAK_FLOPS`). CPUs do
not: a 2-core cloud slice of an EPYC has no data sheet, and the answer depends
on the vector units, the threads torch uses and the dtype (bf16 is 2.5x fp32
on AVX512-BF16). So on a CPU the peak is *measured*, once per machine: a large
matmul timed for half a second (`probe`), its best repetition taken, and kept
in `<cache>/peak.json` under a key naming the CPU, the torch version, the
thread count and the dtype. A cache that cannot be read is measured again, and
so is a probe taken on a busy machine (`cached_cpu_peak`).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

from .data.cachedir import default_cache_dir
from .files import write_text_atomically

# Peak dense bf16 throughput of GPUs, by a part of the name torch.cuda reports.
GPU_PEAK_FLOPS = {
    "H200": 989e12,
    "H100": 989e12,
    "A100": 312e12,
    "L4": 121e12,
    "A10": 125e12,
    "4090": 165e12,
}
PROBE_SIZE = 1024  # 2 * 1024^3 = 2.1 GFLOP a matmul: ~10 ms at 200 GFLOP/s
PROBE_SECONDS = 0.5  # per dtype
PROBES = 5  # the most times a busy machine is probed again
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def peak_flops(device: torch.device, precision: str = "bf16") -> float | None:
    """FLOP/s this device can reach in `precision`: the GPU table, or the CPU's cached probe."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return next((value for key, value in GPU_PEAK_FLOPS.items() if key in name), None)
    if device.type != "cpu":
        return None
    return cached_cpu_peak(precision)


def cached_cpu_peak(precision: str, cache: Path | None = None) -> float:
    """The probe's result for this CPU and precision, measured on the first call only.

    A probe taken while the machine was busy (load average above half its
    CPUs) reads low, and would overstate every MFU after it; so it is kept
    only until a later run measures again (at most `PROBES` times in all: a
    machine that is never idle is not probed by every run), and the highest
    reading wins.
    """
    path = cache or default_cache_dir() / "peak.json"
    key = cpu_key(precision)
    table = _read(path)
    entry = table.get(key)
    valid = isinstance(entry, dict) and isinstance(entry.get("flops"), (int, float))
    valid = valid and entry["flops"] > 0
    probes = entry.get("probes", 1) if valid else 0
    if not valid or not (entry.get("settled") or probes >= PROBES):
        settled = quiet()
        measured = probe(DTYPES.get(precision, torch.float32))
        best = max(measured, entry["flops"] if valid else 0.0)
        entry = {"flops": best, "settled": settled, "probes": probes + 1}
        table[key] = entry
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(path, json.dumps(table, indent=1, sort_keys=True))
    return float(entry["flops"])


def quiet() -> bool:
    """Whether the machine is idle enough for the probe to read its peak (no other load)."""
    try:
        return os.getloadavg()[0] < (os.cpu_count() or 1) / 2
    except (AttributeError, OSError):  # no load average (Windows): trust the probe
        return True


def _read(path: Path) -> dict:
    """The cache's entries; nothing (so everything is measured again) if it is unreadable."""
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return table if isinstance(table, dict) else {}


def cpu_key(precision: str) -> str:
    """What the peak depends on: the CPU, torch (its kernels), the threads and the dtype."""
    threads = torch.get_num_threads()
    return f"{cpu_model()} | torch {torch.__version__} | {threads} threads | {precision}"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            line = next((line for line in file if line.startswith("model name")), "")
    except OSError:
        line = ""
    return line.partition(":")[2].strip() or platform.processor() or platform.machine()


def probe(dtype: torch.dtype, size: int = PROBE_SIZE, seconds: float = PROBE_SECONDS) -> float:
    """FLOP/s of the fastest of repeated (size x size) @ (size x size) matmuls.

    One matmul does size^3 multiply-adds, 2 size^3 FLOPs. The best repetition
    rather than the mean: a neighbour's load only ever makes one slower.
    """
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.mm(a, b)  # warm-up: thread pool, packing buffers
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline or best == float("inf"):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best
