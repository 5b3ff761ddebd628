"""The back-out: subtract a share of the mid-layer residual before the final norm (nanochat).

The residual stream at the output holds everything every layer wrote into
it, including the low-level, token-level features of the early layers that
the next-token prediction no longer needs. nanochat keeps the stream as it
left the middle block (block n_layer // 2) and, before the final norm, takes

    x = x - lambda * x_middle

with one learned scalar lambda, starting at 0.2: the head then reads less of
what the lower half wrote. It costs one scalar and one subtraction.
"""

from __future__ import annotations

import torch
from torch import nn


def backout_layer(n_layer: int) -> int:
    """The block after which the stream is kept: the middle one."""
    return n_layer // 2


class Backout(nn.Module):
    """The share `lambda_` of the middle stream to subtract."""

    def __init__(self) -> None:
        super().__init__()
        self.lambda_ = nn.Parameter(torch.full((1,), 0.2))

    def forward(self, x: torch.Tensor, middle: torch.Tensor) -> torch.Tensor:
        return x - self.lambda_.to(x.dtype) * middle
