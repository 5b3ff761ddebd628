"""The smear gate: each token's embedding takes in some of the previous token's (nanochat).

A transformer needs a layer of attention just to learn that the previous
token matters, the most useful fact about the next one (bigram statistics).
The smear hands it over for free, before the first block:

    e'[t] = e[t] + lambda * sigmoid(w . e[t][:24]) * e[t-1]

where e are token embeddings, w a vector of 24 weights read from the current
token (so each token decides how much of its predecessor it wants) and lambda
one learned scalar. lambda starts at 0, so the model starts as the plain one
and opens the gate as far as it pays; w starts small and positive (nanochat's
init). The first token of a sequence has no predecessor and is left as it is.

Causality holds: position t reads only t - 1. With a KV cache the previous
token's embedding is not in the new input, so the cache carries it
(`KVCache.previous`, and one row per sequence in `batched.RowCache`).
"""

from __future__ import annotations

import torch
from torch import nn

GATE_FEATURES = 24  # nanochat reads the gate from the first 24 features


class Smear(nn.Module):
    """The gate's weights (24 features) and its overall strength `lambda_`."""

    def __init__(self, n_embd: int) -> None:
        super().__init__()
        self.gate = nn.Parameter(torch.empty(min(GATE_FEATURES, n_embd)).uniform_(0.0, 0.02))
        self.lambda_ = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        """Smear embeddings `x` (batch, tokens, n_embd).

        `previous` (batch, 1, n_embd) is the embedding of the token before
        x's first, when there is one (decoding with a cache); without it the
        first token is left as it is.
        """
        if previous is None:
            kept, smeared, before = x[:, :1], x[:, 1:], x[:, :-1]
        else:
            kept, smeared = x[:, :0], x
            before = torch.cat([previous.to(x.dtype), x[:, :-1]], dim=1)
        features = smeared[..., : self.gate.shape[0]]
        strength = self.lambda_.to(x.dtype) * torch.sigmoid(features @ self.gate.to(x.dtype))
        return torch.cat([kept, smeared + strength.unsqueeze(-1) * before], dim=1)
