"""A soft cap on the logits (Gemma 2's final_logit_softcapping; nanochat caps at 15).

    logits = cap * tanh(logits / cap)

is nearly the identity for logits well inside (-cap, cap) and bends smoothly
towards +-cap beyond. Early in training a model can grow a few logits far
beyond the rest and become over-confident; a cap bounds how far apart any
two logits can be (2 * cap), and so how sure the model can be, which nanochat
found to train faster. The tanh is computed in float32, as the loss is.
"""

from __future__ import annotations

import torch


def soft_cap(logits: torch.Tensor, cap: float) -> torch.Tensor:
    """`logits` squashed smoothly into (-cap, cap), in float32."""
    return cap * torch.tanh(logits.float() / cap)
