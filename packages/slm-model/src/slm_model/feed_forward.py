"""The position-wise feed-forward network: GPT-2's GELU MLP and Llama's SwiGLU.

After attention has mixed information between tokens, each token is processed
on its own by a small two-layer network that widens the features, applies a
non-linearity and projects back. Most of a transformer's weights live here.

- `FeedForward` (GPT-2): proj(gelu(fc(x))), hidden width 4 * n_embd.
- `ReLUSquared` (So et al., 2021, "Primer"; nanochat): proj(relu(fc(x))^2).
  As cheap as GPT-2's MLP, and the square keeps the output sparse (negative
  inputs give exactly 0) while its slope grows with the input.
- `SwiGLU` (Shazeer, 2020; Llama): proj(silu(gate(x)) * up(x)). One branch
  decides, token by token and feature by feature, how much of the other
  branch passes: a learned gate. It has three matrices instead of two, so its
  hidden width is usually 2/3 of GPT-2's to keep the parameter count.

Both name their input layer `fc` and their output layer `proj`, so code that
targets layers by name (LoRA) works on either. In `SwiGLU`, `fc` computes
gate and up in one matrix multiplication: its output holds the gate's
`hidden` features, then the up projection's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import GPTConfig


class FeedForward(nn.Module):
    """Position-wise MLP: widen (4x by default), GELU, project back."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        hidden = config.mlp_hidden
        self.fc = nn.Linear(config.n_embd, hidden, bias=config.bias)
        # GPT-2 uses the tanh approximation of GELU; matching it keeps imported weights exact.
        self.gelu = nn.GELU(approximate="tanh")
        self.proj = nn.Linear(hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(self.gelu(self.fc(x))))


class ReLUSquared(FeedForward):
    """GPT-2's MLP with relu(x)^2 in place of GELU (hidden width 4 * n_embd by default)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.relu(self.fc(x)).square()))


class SwiGLU(nn.Module):
    """Gated feed-forward: proj(silu(gate) * up), with gate and up fused in `fc`."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.hidden = config.mlp_hidden
        self.fc = nn.Linear(config.n_embd, 2 * self.hidden, bias=config.bias)
        self.proj = nn.Linear(self.hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.fc(x).chunk(2, dim=-1)
        return self.dropout(self.proj(F.silu(gate) * up))


def make_feed_forward(config: GPTConfig) -> nn.Module:
    """The feed-forward network `config.mlp` names."""
    if config.mlp == "swiglu":
        return SwiGLU(config)
    return ReLUSquared(config) if config.mlp == "relu2" else FeedForward(config)
