"""Learned per-layer residual and x0 lambdas (modded-nanogpt; nanochat's resid_lambdas, x0_lambdas).

Before block i, the residual stream becomes

    x = resid[i] * x + x0[i] * x0

where x0 is the stream as it entered the first block (the token embedding).
Two scalars per layer, so they cost nothing, but they let the network choose
how loud the stream is at each depth, and let every layer read the bare token
again without the earlier layers having to carry it along.

The initial values are nanochat's: resid falls linearly from 1.15 at the first
layer to 1.05 at the last (a stronger stream early), and x0 from 0.20 to 0.05
(earlier layers blend in more of the embedding). With both at (1, 0) the model
would be the plain transformer.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualLambdas(nn.Module):
    """`resid` and `x0`, one scalar per layer each."""

    def __init__(self, n_layer: int) -> None:
        super().__init__()
        depth = torch.arange(n_layer, dtype=torch.float32) / max(n_layer - 1, 1)
        self.resid = nn.Parameter(1.15 - 0.10 * depth)
        self.x0 = nn.Parameter(0.20 - 0.15 * depth)

    def forward(self, x: torch.Tensor, x0: torch.Tensor, layer: int) -> torch.Tensor:
        """The stream that block `layer` reads."""
        return self.resid[layer].to(x.dtype) * x + self.x0[layer].to(x.dtype) * x0
