"""A value-embedding residual (ResFormer; Zhou et al., 2024), as nanochat has it.

Attention's values are computed from the residual stream, which deeper layers
have mixed and transformed until little of the token itself is left. A value
embedding gives a layer a second, direct route from the token to its values:
a table of one vector per token id (kv_heads * head_dim wide), added to the
values the layer computes, so every layer can still "see" which token sits at
each position at the cost of a lookup (no matmul: it adds no FLOPs).

nanochat (`nanochat/gpt.py`: `value_embeds`, `has_ve`, `ve_gate`) gives a
table to every other layer, the last always included, and scales each
key/value head's share by an input-dependent gate,
3 * sigmoid(W x[:12]), read from the first 12 features of the layer's
normalised input: between 0 and 3, so a layer can switch the route off or
lean on it. The table starts like a value projection's output (uniform, std
1/sqrt(n_embd)) and the gate's weights small and positive (just above the
neutral 1.5).

With a KV cache nothing more is needed: the value embedding is added before
the values are stored, so the cache holds the mixed values.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import GPTConfig

GATE_FEATURES = 12  # nanochat's ve_gate_channels


def has_value_embedding(layer: int, n_layer: int) -> bool:
    """Alternate layers, counted back from the last, which always has one (nanochat's has_ve)."""
    return layer % 2 == (n_layer - 1) % 2


class ValueEmbedding(nn.Module):
    """One layer's table of per-token values and the gate that scales it per key/value head."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.kv_heads, self.head_dim = config.kv_heads, config.head_dim
        self.table = nn.Embedding(config.vocab_size, config.kv_heads * config.head_dim)
        self.gate = nn.Linear(min(GATE_FEATURES, config.n_embd), config.kv_heads, bias=False)
        self.reset_parameters(config.n_embd)

    def reset_parameters(self, n_embd: int) -> None:
        """nanochat's init: the table like a value projection, the gate slightly open."""
        bound = math.sqrt(3 / n_embd)  # a uniform with standard deviation 1/sqrt(n_embd)
        nn.init.uniform_(self.table.weight, -bound, bound)
        nn.init.uniform_(self.gate.weight, 0.0, 0.02)

    def forward(self, idx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """What to add to the values (batch, tokens, kv_heads * head_dim).

        `idx` (batch, tokens) are the token ids, `x` the attention's
        normalised input at the same positions, which the gate reads.
        """
        batch, tokens = idx.shape
        gate = 3 * torch.sigmoid(self.gate(x[..., : self.gate.in_features]))
        values = self.table(idx).view(batch, tokens, self.kv_heads, self.head_dim)
        return (gate.unsqueeze(-1) * values.to(gate.dtype)).flatten(2)
