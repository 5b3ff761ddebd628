"""Rotary position embeddings (RoPE; Su et al., 2021), as Llama uses them.

GPT-2 adds a learned vector for each position to the token embeddings, so the
model only knows absolute positions, and only up to the length of its table.
RoPE instead rotates each query and key, inside attention, by an angle that
grows with the token's position. The features are taken in pairs, and pair i
turns at its own frequency theta^(-2i/head_dim): fast for the first pairs,
slow for the last. A dot product of two rotated vectors depends only on the
difference of their angles, so attention scores see the *relative* distance
between tokens, and no weights are spent on positions.

Which features form a pair is a convention. Meta's original code rotates
neighbours (0, 1), (2, 3), ...; Hugging Face's Llama, GPT-NeoX and the book
pair feature i with feature i + head_dim/2 ("rotate half"). Both are the same
model up to a permutation of the query and key weights; we use rotate-half, so
Hugging Face checkpoints load without reshuffling.

Llama 3.1 and 3.2 stretch RoPE for long contexts ("llama3" rope scaling): the
pairs whose wavelength is longer than the original context turn `factor` times
slower, those shorter than original_context / high_freq_factor keep their
speed, and the ones in between are blended smoothly. Only the frequencies
change, so it is one function applied to them before the angles are taken.

With a KV cache the new tokens start at position `start` (the number already
cached), so they are rotated by the angles of their real positions; the cached
keys keep the rotation they were stored with.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

LLAMA3_KEYS = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")


def check_rope_scaling(scaling: Mapping) -> None:
    """Refuse, in one line, any rope scaling but Llama 3's, or one missing its numbers."""
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind != "llama3":
        raise ValueError(
            f"RoPE scaling {kind!r} is not supported: slm implements plain RoPE and Llama 3's "
            "'llama3' scaling"
        )
    missing = [key for key in LLAMA3_KEYS if not isinstance(scaling.get(key), (int, float))]
    if missing:
        raise ValueError(f"llama3 RoPE scaling needs {', '.join(missing)} (numbers)")


def llama3_frequencies(inverse_frequencies: torch.Tensor, scaling: Mapping) -> torch.Tensor:
    """Llama 3's rescaled RoPE frequencies (as Meta's reference code and transformers)."""
    factor = scaling["factor"]
    low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
    context = scaling["original_max_position_embeddings"]
    wavelengths = 2 * math.pi / inverse_frequencies
    slow = wavelengths > context / low  # longer than the trained context: stretched
    fast = wavelengths < context / high  # short: kept
    blend = (context / wavelengths - low) / (high - low)  # 0 at the slow end, 1 at the fast
    blended = (1 - blend) * inverse_frequencies / factor + blend * inverse_frequencies
    scaled = torch.where(slow, inverse_frequencies / factor, blended)
    return torch.where(fast, inverse_frequencies, scaled)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) on the two halves of the last dimension: a 90 degree turn per pair."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class RotaryEmbedding(nn.Module):
    """Rotate (batch, heads, tokens, head_dim) queries or keys by their positions' angles.

    The cosines and sines of every position up to `max_positions` are computed
    once, in float32, and kept as buffers that are not saved with the weights.
    """

    def __init__(
        self,
        head_dim: int,
        max_positions: int,
        theta: float = 10000.0,
        scaling: Mapping | None = None,
    ) -> None:
        """`scaling`: None, or Llama 3's rope_scaling (see the module docstring)."""
        super().__init__()
        if head_dim % 2 != 0:
            raise ValueError(f"RoPE rotates pairs of features; head_dim={head_dim} must be even")
        self.head_dim, self.max_positions, self.theta = head_dim, max_positions, theta
        pairs = torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim
        inverse_frequencies = 1.0 / (theta**pairs)  # one per pair of features
        if scaling is not None:
            check_rope_scaling(scaling)
            inverse_frequencies = llama3_frequencies(inverse_frequencies, scaling)
        positions = torch.arange(max_positions, dtype=torch.float32)
        angles = torch.outer(positions, inverse_frequencies)  # (positions, head_dim / 2)
        angles = torch.cat((angles, angles), dim=-1)  # both features of a pair turn together
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """`x` rotated as if its tokens sat at positions start, start + 1, ..."""
        tokens = x.shape[-2]
        if start + tokens > self.max_positions:
            raise ValueError(
                f"positions up to {start + tokens - 1} need a RotaryEmbedding with "
                f"max_positions > {start + tokens - 1}, got {self.max_positions}"
            )
        cos = self.cos[start : start + tokens].to(x.dtype)
        sin = self.sin[start : start + tokens].to(x.dtype)
        return x * cos + rotate_half(x) * sin

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, max_positions={self.max_positions}, theta={self.theta}"
