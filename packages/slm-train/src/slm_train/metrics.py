"""What a run records about itself: metrics.jsonl, throughput, FLOPs and MFU."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from .files import write_jsonl_atomically

# Peak dense bf16 throughput, for the MFU estimate (model FLOPs utilisation).
PEAK_FLOPS = {
    "H200": 989e12,
    "H100": 989e12,
    "A100": 312e12,
    "L4": 121e12,
    "A10": 125e12,
    "4090": 165e12,
}


class MetricsLog:
    """metrics.jsonl, kept consistent with the checkpoint it belongs to."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        self.path = path
        self.records: list[dict[str, Any]] = []
        if resume_step is not None and path.is_file():
            # Drop what an interrupted run logged after its last checkpoint: it will be redone.
            records = read_jsonl(path)
            self.records = [r for r in records if r.get("step", 0) <= resume_step]
        write_jsonl_atomically(path, self.records)

    @classmethod
    def open(cls, run_dir: Path, step: int, is_main: bool = True) -> MetricsLog:
        """The run's log, cut back to `step` when resuming; other DDP processes log nothing."""
        if not is_main:
            return _NoLog()
        return cls(run_dir / "metrics.jsonl", step if step else None)

    def append(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")


def flops_per_token(model: torch.nn.Module) -> float:
    """Forward + backward FLOPs per token (PaLM appendix B, as nanoGPT estimates them).

    6 per weight a token is multiplied by: the tables (token, position and value
    embeddings) are lookups and are left out (`num_parameters(exclude_embeddings=True)`).
    """
    gpt = getattr(model, "gpt", model)  # a classifier wraps its GPT
    c = gpt.config
    return (
        6 * gpt.num_parameters(exclude_embeddings=True)
        + 12 * c.n_layer * c.attention_width * c.block_size
    )


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((value for key, value in PEAK_FLOPS.items() if key in name), None)


class Throughput:
    """Tokens per second since the last reading, and the FLOP/s and MFU they imply."""

    def __init__(self, flops_per_token: float, peak: float | None) -> None:
        self.flops_per_token, self.peak = flops_per_token, peak
        self.since, self.tokens = time.perf_counter(), 0

    def add(self, tokens: int) -> None:
        self.tokens += tokens

    def read(self) -> dict[str, float]:
        now = time.perf_counter()
        speed = self.tokens / max(now - self.since, 1e-9)
        self.since, self.tokens = now, 0
        reading = {"tokens_per_s": speed, "flops_per_s": speed * self.flops_per_token}
        if self.peak:
            reading["mfu"] = reading["flops_per_s"] / self.peak
        return reading


class _NoLog(MetricsLog):
    """What processes other than rank 0 log: nothing."""

    def __init__(self) -> None:
        self.records = []

    def append(self, record: dict[str, Any]) -> None:
        pass


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file, skipping a line cut short by a crash (only the last can be)."""
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records
