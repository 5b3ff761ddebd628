"""A key/value cache for incremental decoding.

Without a cache, generating token n re-runs the model over all n-1 previous
tokens. But in a causal model the keys and values of earlier tokens never
change, so we store them: each step then computes projections for one new
token and attends over the stored ones. The buffers are allocated once, at
the full context length, so decoding does no reallocation.

With grouped-query attention the cache holds only the key/value heads
(`n_kv_head`), which is where that design saves memory. With RoPE the keys are
stored already rotated by their positions.
"""

from __future__ import annotations

import torch


class KVCache:
    """Per layer, keys and values of shape (batch, n_head, context_length, head_dim).

    `n_head` here is the number of key/value heads the model keeps.
    """

    def __init__(
        self,
        n_layer: int,
        batch_size: int,
        n_head: int,
        context_length: int,
        head_dim: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        shape = (batch_size, n_head, context_length, head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.context_length = context_length
        self.length = 0  # tokens stored so far (the model advances it after each forward)
        # The last token's embedding (batch, 1, n_embd), which the smear gate (smear.py)
        # mixes into the next token's; None until a forward has run.
        self.previous: torch.Tensor | None = None

    def store(
        self, layer: int, keys: torch.Tensor, values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append new keys/values (batch, heads, new_tokens, head_dim); return all stored so far."""
        end = self.length + keys.shape[2]
        if end > self.context_length:
            raise ValueError(
                f"the KV cache holds {self.context_length} tokens; {end} do not fit. "
                "Reset it and re-run the last context_length tokens"
            )
        self.keys[layer][:, :, self.length : end] = keys
        self.values[layer][:, :, self.length : end] = values
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def reset(self) -> None:
        self.length = 0
        self.previous = None
