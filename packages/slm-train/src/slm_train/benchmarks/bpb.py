"""Bits per byte on held-out text: a loss that every tokenizer can be compared on.

Validation loss is in nats per *token*, and a token is a different amount of
text for every tokenizer (a 4,096-token BPE cuts English finer than GPT-2's
50,257), so two runs' losses say nothing about each other. Per byte of text
they do:

    bpb = (sum over scored tokens of -ln p(token)) / ln 2 / (UTF-8 bytes of those tokens)

The held-out split is scored whole, in non-overlapping windows of the
context length (as `slm-cli eval` scores it). Special tokens such as
`<|endoftext|>` stand for no text, so they are left out of both sums, as
nanochat leaves them out. Chance is a uniform guess over the vocabulary;
the baseline is the unigram model of the training tokens, on the same tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from slm_model import GPTModel

from ..data.datasets import DataTooSmallError, sequential_windows
from ..evals import score
from .context import TaskContext
from .heldout import token_bytes

BATCH = 16


@dataclass
class ByteCount:
    """The sums that bits per byte is made of."""

    nats: float  # -ln p summed over the scored tokens
    tokens: int  # tokens scored (special tokens left out)
    bytes: int  # UTF-8 bytes those tokens stand for

    @property
    def bpb(self) -> float:
        return self.nats / math.log(2) / self.bytes


@torch.no_grad()
def count_bits(
    model: GPTModel,
    tokens: np.ndarray,
    sizes: np.ndarray,
    *,
    windows: int | None = None,
    advance: Callable[[int], None] | None = None,
) -> ByteCount:
    """Score `tokens` in windows of the model's context (at most `windows` of them);
    `sizes[t]` is the number of bytes token t stands for (token_bytes)."""
    block = model.config.block_size
    if windows is not None:
        tokens = tokens[: windows * block + 1]
    if len(tokens) <= block:
        raise DataTooSmallError(
            f"the held-out split has {len(tokens)} tokens, too few for one window of {block}"
        )
    device = model.tok_emb.weight.device
    was_training = model.training
    model.eval()
    total = ByteCount(0.0, 0, 0)
    for x, y in sequential_windows(tokens, block, BATCH):
        logits = model(x.to(device)).float().flatten(0, 1)
        nll = F.cross_entropy(logits, y.flatten().to(device), reduction="none").cpu().double()
        size = torch.from_numpy(sizes)[y.flatten()]
        total.nats += float(nll[size > 0].sum())
        total.tokens += int((size > 0).sum())
        total.bytes += int(size.sum())
        if advance:
            advance(len(x))
    model.train(was_training)
    return total


def bpb_task(context: TaskContext, limit: int | None) -> list[dict]:
    """Bits per byte on the held-out split (at most `limit` windows), beside a uniform
    guess over the vocabulary and the unigram model."""
    tokens, tokenizer = context.held_out.tokens, context.tokenizer
    sizes, block = token_bytes(tokenizer), context.model.config.block_size
    windows = max(0, (len(tokens) - 1) // block)
    windows = min(windows, limit) if limit else windows
    advance = context.counter("bpb", windows)
    counted = count_bits(context.model, tokens, sizes, windows=windows, advance=advance)
    scored = tokens[1 : windows * block + 1]
    scored = scored[sizes[scored] > 0]
    bits = math.log(2) * counted.bytes
    unigram = -context.unigram.log_likelihood(scored) / bits
    uniform = counted.tokens * math.log(tokenizer.vocab_size) / bits
    return [score("bpb", "bits_per_byte", counted.bpb, n=counted.tokens, chance=uniform,
                  baseline=unigram)]  # fmt: skip
