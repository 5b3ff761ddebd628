"""Normalisation layers: GPT-2's LayerNorm and Llama's RMSNorm.

Every pre-norm block rescales its input before attention and before the MLP,
so that each sub-layer sees features of a steady size however the residual
stream grows.

- LayerNorm (Ba et al., 2016) subtracts each token's mean, divides by its
  standard deviation, then applies a learned scale and shift.
- RMSNorm (Zhang & Sennrich, 2019) only divides by the root mean square and
  applies a learned scale: no mean, no shift. It trains as well and is a little
  cheaper, which is why Llama and its descendants use it.

        rmsnorm(x) = weight * x / sqrt(mean(x ** 2) + eps)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import GPTConfig


class RMSNorm(nn.RMSNorm):
    """Root-mean-square normalisation over the last dimension, with a learned scale.

    PyTorch's fused `nn.RMSNorm` computes the formula above. This class makes
    `eps` explicit, since checkpoints from other libraries fix it (PyTorch's
    default depends on the dtype), and normalises in float32 whatever the
    input's dtype, as Llama's reference code does: a mean of squares summed in
    bfloat16 loses precision, and the fused kernel wants input and weight in
    one dtype (under autocast, QK-norm gets bfloat16 input and a float32 weight).
    """

    def __init__(self, dim: int, eps: float = 1e-5, weight: bool = True) -> None:
        """`weight=False`: no learned scale, only the division (nanochat's norms)."""
        super().__init__(dim, eps=eps, elementwise_affine=weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.float() if self.weight is not None else None
        return F.rms_norm(x.float(), self.normalized_shape, weight, self.eps).to(x.dtype)


def make_norm(config: GPTConfig, dim: int | None = None) -> nn.Module:
    """The normalisation layer `config.norm` names, over `dim` features (default n_embd).

    With `config.norm_weight=False` it has no parameters: it only normalises.
    """
    dim = config.n_embd if dim is None else dim
    if config.norm == "rmsnorm":
        return RMSNorm(dim, eps=config.norm_eps, weight=config.norm_weight)
    affine = config.norm_weight
    return nn.LayerNorm(dim, eps=config.norm_eps, elementwise_affine=affine, bias=config.bias)
