"""nanochat's own model and optimiser, as one more row of bench/recipe.py's race.

    uv run python bench/recipe.py --nanochat /path/to/nanochat --quick

Nothing of nanochat is copied into slm: its package is imported from the
checkout given (`sys.path`), and it trains here as its `scripts/base_train.py`
sets it up, at the race's shape (4 layers, 256 wide, 4 heads of 64, context
256, 16 x 256 tokens a step, no accumulation) and on the race's own prepared
tokens (slm's `builtin:bbe`, `bpe:4096`), drawn by the same `RandomWindows`
as slm's runs:

- `GPT(GPTConfig(...))` built on the meta device, `to_empty`, `init_weights`;
- `model.setup_optimizer(...)` at base_train's reference rates (embeddings
  0.3, head 0.008, scalars 0.5, matrices 0.02), not scaled by
  sqrt(batch / 2^19): the issue measured the scaled rates at 3.85 and the
  reference ones at 3.29, so the reference ones are nanochat at its best here;
- the Muon weight decay 0.28 scaled as base_train scales it for the batch
  and the model's compute-optimal horizon, on its cosine down to 0;
- base_train's schedules: 40 warm-up steps, then constant, then a linear
  warm-down over the last 65 % to 5 % of the rate; Muon momentum 0.85 -> 0.97
  over 400 steps, down to 0.90 during the warm-down. base_train knows its
  number of steps in advance; a race is a time budget, so "the fraction of
  the run" here is the fraction of the time budget spent, as in slm;
- `torch.compile(model, dynamic=False)`, as base_train does (its optimiser's
  fused steps compile themselves); `--quick` turns compiling off (and swaps
  the optimiser's compiled steps for the plain functions they wrap), since
  compiling alone (about 2 minutes on a busy 2-core CPU) outlasts a smoke
  test's budget;
- bf16 where the CPU (or GPU) has it natively, as nanochat chooses its
  compute dtype (NANOCHAT_DTYPE; set before nanochat is imported).

Patched around from this side, nothing else: flash attention is not needed
(nanochat falls back to PyTorch SDPA by itself off Hopper GPUs), and the
window pattern is "L" (full context everywhere) rather than base_train's
"SSSL": at a context of 256 a quarter window saves nothing, and SDPA has no
sliding windows, which nanochat itself warns makes them slow.

It keeps its model and optimiser in memory between the race's turns (it has
no slm checkpoint to resume from), and its clock counts only its own turns,
setup and compiling included, as slm's runs count theirs.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import torch
from slm_train.data.datasets import RandomWindows
from slm_train.runtime import resolve_precision

SHAPE = dict(n_layer=4, n_embd=256, n_head=4, n_kv_head=4, sequence_len=256)
BATCH = 16
RATES = dict(embedding_lr=0.3, unembedding_lr=0.008, scalar_lr=0.5, matrix_lr=0.02)
WEIGHT_DECAY, WARMUP_STEPS, WARMDOWN, FINAL_LR = 0.28, 40, 0.65, 0.05


def import_nanochat(path: str, device: torch.device):
    """nanochat's GPT and GPTConfig from the checkout at `path`, in bf16 where native."""
    if not (Path(path) / "nanochat" / "gpt.py").is_file():
        raise SystemExit(f"{path} is not a nanochat checkout (no nanochat/gpt.py in it)")
    bf16 = resolve_precision("auto", device) == "bf16"
    os.environ.setdefault("NANOCHAT_DTYPE", "bfloat16" if bf16 else "float32")
    sys.path.insert(0, str(Path(path).resolve()))
    from nanochat.gpt import GPT, GPTConfig

    return GPT, GPTConfig


def uncompile_optimizer_steps() -> None:
    """Swap nanochat's `torch.compile`d fused optimiser steps for the functions they wrap
    (`--quick`: compiling them takes minutes on a CPU; the arithmetic is the same)."""
    from nanochat import optim

    for name in ("adamw_step_fused", "muon_step_fused"):
        step = getattr(optim, name)
        setattr(optim, name, getattr(step, "_torchdynamo_orig_callable", step))


class NanochatEntry:
    """nanochat trained in turns: `advance(deadline)` trains until its own clock passes it."""

    def __init__(self, path: str, data, budget: float, device: torch.device, quick: bool):
        self.name = "nanochat (its model + optimiser)"
        self.path, self.data, self.budget, self.device, self.quick = (
            path,
            data,
            budget,
            device,
            quick,
        )
        self.steps = self.tokens = 0
        self.training_seconds = self.clock = 0.0
        self.done, self.model = False, None

    def setup(self) -> None:
        gpt, gpt_config = import_nanochat(self.path, self.device)
        if self.quick:
            uncompile_optimizer_steps()
        vocab = self.data.load_tokenizer().vocab_size
        config = gpt_config(vocab_size=vocab, window_pattern="L", **SHAPE)
        with torch.device("meta"):
            model = gpt(config)
        model.to_empty(device=self.device)
        model.init_weights()
        self.model = model
        self.optimizer = model.setup_optimizer(
            weight_decay=self.weight_decay(gpt, gpt_config, vocab), **RATES
        )
        self.train_model = model if self.quick else torch.compile(model, dynamic=False)
        train = self.data.tokens("train")
        self.windows = RandomWindows(train, SHAPE["sequence_len"], BATCH, 1337, "training")

    def weight_decay(self, gpt, gpt_config, vocab: int) -> float:
        """base_train's: 0.28 x sqrt(B / 2^19) x (d12's horizon / this model's)."""

        def scaling_params(depth: int, width: int, heads: int) -> int:
            config = gpt_config(
                vocab_size=vocab,
                n_layer=depth,
                n_embd=width,
                n_head=heads,
                n_kv_head=heads,
                sequence_len=SHAPE["sequence_len"],
                window_pattern="L",
            )
            with torch.device("meta"):
                counts = gpt(config).num_scaling_params()
            return counts["transformer_matrices"] + counts["lm_head"]

        d12 = scaling_params(12, 768, 6)
        ours = scaling_params(SHAPE["n_layer"], SHAPE["n_embd"], SHAPE["n_head"])
        batch = BATCH * SHAPE["sequence_len"]
        return WEIGHT_DECAY * math.sqrt(batch / 2**19) * d12 / ours

    def schedules(self, progress: float) -> tuple[float, float, float]:
        """(rate multiplier, Muon momentum, Muon weight decay factor) at this step."""
        step, start = self.steps, 1 - WARMDOWN
        if step < WARMUP_STEPS:
            rate = (step + 1) / WARMUP_STEPS
        elif progress <= start:
            rate = 1.0
        else:
            left = min(1.0, (progress - start) / WARMDOWN)
            rate = (1 - left) + left * FINAL_LR
        momentum = 0.85 + min(1.0, step / 400) * 0.12
        if progress >= start:
            left = min(1.0, (progress - start) / WARMDOWN)
            momentum = 0.97 * (1 - left) + 0.90 * left
        return rate, momentum, 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    def advance(self, deadline: float) -> None:
        """Train until this entry's clock passes `deadline` or its budget is spent."""
        began = time.perf_counter()
        if self.model is None:
            self.setup()
        while not self.done and self.clock + time.perf_counter() - began < deadline:
            self.train_step(self.clock + time.perf_counter() - began)
            self.done = self.clock + time.perf_counter() - began >= self.budget
        self.clock += time.perf_counter() - began

    def train_step(self, elapsed: float) -> None:
        start = time.perf_counter()
        rate, momentum, decay = self.schedules(elapsed / self.budget)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * rate
            if group["kind"] == "muon":
                group["momentum"] = momentum
                group.setdefault("base_weight_decay", group["weight_decay"])
                group["weight_decay"] = group["base_weight_decay"] * decay
        x, y = (t.to(self.device).contiguous() for t in self.windows.batch(self.steps, 0))
        self.train_model(x, y).backward()
        self.optimizer.step()
        self.model.zero_grad(set_to_none=True)
        self.steps, self.tokens = self.steps + 1, self.tokens + x.numel()
        self.training_seconds += time.perf_counter() - start

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Next-token logits of the uncompiled model (evaluation shapes vary)."""
        self.model.eval()
        return self.model(batch)
