"""What a run records about itself: metrics.jsonl, throughput, FLOPs and MFU.

FLOPs are counted for everything a step does that costs: the model's forward
and backward (`flops_per_token`, the output layer included even when it shares
its weights with the embedding, since its matmul is done either way) and
Muon's Newton-Schulz iterations (`optimizer_flops_per_step`), which are in
`flops_per_s` and so in MFU. The peak MFU divides by is peak.py's.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from .files import write_jsonl_atomically


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
    """Forward + backward FLOPs per token (PaLM appendix B, as nanoGPT estimates them):
    6 per weight a token meets in a matmul, plus attention's scores and mixing.

    The tables (token, position and value embeddings) are lookups and are left
    out (`num_parameters(exclude_embeddings=True)`), but the output layer counts
    even when tied to the token embedding: the lookup is free, the logits'
    matmul is 6 * vocab * width FLOPs a token all the same.
    """
    gpt = getattr(model, "gpt", model)  # a classifier wraps its GPT
    c = gpt.config
    matmul_weights = gpt.num_parameters(exclude_embeddings=True)
    head = getattr(gpt, "lm_head", None)
    if head is not None and head.weight is gpt.tok_emb.weight:
        matmul_weights += head.weight.numel()
    return 6 * matmul_weights + 12 * c.n_layer * c.attention_width * c.block_size


def optimizer_flops_per_step(optimizer: Any) -> float:
    """Muon's Newton-Schulz FLOPs per step (0 for AdamW, whose few per weight are noise).

    Per matrix (or part of a fused one, muon.py), with m <= n its sides: each of
    `ns_steps` iterations does X X^T (2 m m n), the Gram polynomial (2 m^3) and
    its product with X (2 m m n).
    """
    total = 0.0
    for group in getattr(optimizer, "param_groups", []):
        if "ns_steps" not in group:
            continue
        for p in group["params"]:
            for rows in group["splits"] or [p.size(0)]:
                m, n = sorted((rows, p.size(1)))
                total += group["ns_steps"] * (4 * m * m * n + 2 * m**3)
    return total


class Throughput:
    """Tokens per second since the last reading, and the FLOP/s and MFU they imply.

    FLOP/s are the model's per token plus the optimizer's per step
    (`optimizer_flops_per_step`); `peak` is peak.peak_flops, None where unknown.
    """

    def __init__(
        self, flops_per_token: float, peak: float | None, flops_per_step: float = 0.0
    ) -> None:
        self.flops_per_token, self.peak, self.flops_per_step = flops_per_token, peak, flops_per_step
        self.since, self.tokens, self.steps = time.perf_counter(), 0, 0

    def add(self, tokens: int) -> None:
        """One optimizer step of `tokens` tokens."""
        self.tokens, self.steps = self.tokens + tokens, self.steps + 1

    def read(self) -> dict[str, float]:
        now = time.perf_counter()
        seconds = max(now - self.since, 1e-9)
        flops = self.tokens * self.flops_per_token + self.steps * self.flops_per_step
        reading = {"tokens_per_s": self.tokens / seconds, "flops_per_s": flops / seconds}
        self.since, self.tokens, self.steps = now, 0, 0
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
