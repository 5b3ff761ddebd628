"""Attention, built up step by step as in the book (chapter 3), then as Llama has it.

1. `SelfAttention`: every token looks at every token. Each token's query is
   compared with every key (a dot product, scaled by 1/sqrt(d) so the softmax
   does not saturate as d grows); the softmax of those scores weights the values.
2. `CausalAttention`: a language model predicts the next token, so position t
   must not see positions after t. A mask sets those scores to -inf before the
   softmax, and dropout on the attention weights regularises training.
3. `MultiHeadAttention`: several smaller attentions ("heads") run side by side
   on slices of the embedding, so each can attend to something different. One
   fused linear layer computes queries, keys and values for all heads at once,
   heads are split by reshaping, and a final projection mixes them.
4. Grouped-query attention (Ainslie et al., 2023), an option of
   `MultiHeadAttention`: groups of query heads share one key/value head. With
   `num_kv_heads=1` it is multi-query attention (Shazeer, 2019). The weights
   shrink a little; the KV cache, which holds only the key/value heads, shrinks
   by the group size, and that is what makes long generations cheaper.

Modern models add two things inside attention, both options here: rotary
position embeddings (`rope.py`) turn queries and keys by their positions, and
QK-norm (Qwen3, OLMo 2) puts an RMSNorm on each head's queries and keys, which
keeps attention logits from growing without bound during training.

The fast path of `MultiHeadAttention` calls PyTorch's fused
`scaled_dot_product_attention` (flash / memory-efficient kernels where the
hardware has them); `forward_with_weights` computes the same thing step by step
and also returns the attention weights for inspection.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .norm import RMSNorm

if TYPE_CHECKING:
    from .kv_cache import KVCache
    from .rope import RotaryEmbedding


def _check_input(x: torch.Tensor, d_in: int, context_length: int | None = None) -> None:
    if x.dim() != 3:
        raise ValueError(
            f"attention expects input of shape (batch, tokens, d_in), got {x.dim()} dimensions "
            f"{tuple(x.shape)}; add a batch dimension with x.unsqueeze(0)"
        )
    if x.shape[-1] != d_in:
        raise ValueError(
            f"input has {x.shape[-1]} features, but this layer was built for d_in={d_in}"
        )
    if context_length is not None and x.shape[1] > context_length:
        raise ValueError(
            f"input has {x.shape[1]} tokens, more than context_length={context_length}; "
            "truncate it to the last context_length tokens"
        )


class SelfAttention(nn.Module):
    """Scaled dot-product attention without a mask.

    Input (batch, tokens, d_in), output (batch, tokens, d_out).
    """

    def __init__(self, d_in: int, d_out: int, qkv_bias: bool = False) -> None:
        super().__init__()
        self.d_in = d_in
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, tokens, tokens): how much each token (row) attends to each token (column)."""
        _check_input(x, self.d_in)
        queries, keys = self.W_query(x), self.W_key(x)
        scores = queries @ keys.transpose(1, 2)
        return torch.softmax(scores / math.sqrt(keys.shape[-1]), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention_weights(x) @ self.W_value(x)


class CausalAttention(SelfAttention):
    """Self-attention in which token t sees only tokens 0..t, with dropout on the weights."""

    def __init__(
        self,
        d_in: int,
        d_out: int,
        context_length: int,
        dropout: float = 0.0,
        qkv_bias: bool = False,
    ) -> None:
        super().__init__(d_in, d_out, qkv_bias)
        self.context_length = context_length
        self.dropout = nn.Dropout(dropout)
        # A buffer moves with the module to the GPU but is not a trained parameter.
        mask = torch.triu(torch.ones(context_length, context_length, dtype=torch.bool), diagonal=1)
        self.register_buffer("mask", mask, persistent=False)

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.d_in, self.context_length)
        tokens = x.shape[1]
        queries, keys = self.W_query(x), self.W_key(x)
        scores = queries @ keys.transpose(1, 2)
        scores = scores.masked_fill(self.mask[:tokens, :tokens], float("-inf"))
        return self.dropout(torch.softmax(scores / math.sqrt(keys.shape[-1]), dim=-1))


class MultiHeadAttention(nn.Module):
    """Causal multi-head attention with a fused QKV projection and an optional KV cache.

    `num_kv_heads` < `num_heads` makes it grouped-query attention, `rotary`
    applies RoPE to queries and keys, and `qk_norm` normalises them first.
    """

    def __init__(
        self,
        d_in: int,
        d_out: int,
        context_length: int,
        num_heads: int,
        dropout: float = 0.0,
        qkv_bias: bool = False,
        out_bias: bool = True,
        use_sdpa: bool = True,
        *,
        num_kv_heads: int | None = None,
        rotary: RotaryEmbedding | None = None,
        qk_norm: bool = False,
        norm_eps: float = 1e-5,
        norm_weight: bool = True,
    ) -> None:
        """`use_sdpa=False` makes `forward` (without a cache) take the explicit path."""
        super().__init__()
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        _check_heads(d_out, num_heads, num_kv_heads)
        self.d_in, self.d_out = d_in, d_out
        self.context_length = context_length
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.head_dim = d_out // num_heads
        self.dropout = dropout
        # All query heads, then the key heads, then the value heads, in one matrix.
        kv_width = num_kv_heads * self.head_dim
        self.qkv = nn.Linear(d_in, d_out + 2 * kv_width, bias=qkv_bias)
        # Back to the residual stream's width (d_in): d_out differs when heads are set
        # wider than d_in / num_heads (Qwen3's head_dim).
        self.out_proj = nn.Linear(d_out, d_in, bias=out_bias)
        self.use_sdpa = use_sdpa
        self.rotary = rotary
        if qk_norm:
            # One scale per head feature, shared by all heads (as in Qwen3).
            self.q_norm = RMSNorm(self.head_dim, eps=norm_eps, weight=norm_weight)
            self.k_norm = RMSNorm(self.head_dim, eps=norm_eps, weight=norm_weight)
        else:
            self.q_norm = self.k_norm = None

    def _heads(
        self, x: torch.Tensor, start: int = 0, extra_values: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries (batch, heads, tokens, head_dim); keys and values with num_kv_heads heads.

        `start` is the position of the first token in `x`, for RoPE.
        """
        batch, tokens, _ = x.shape
        queries, keys, values = self.project(x, extra_values)
        queries = queries.view(batch, tokens, self.num_heads, self.head_dim).transpose(1, 2)
        keys = keys.view(batch, tokens, self.num_kv_heads, self.head_dim).transpose(1, 2)
        values = values.view(batch, tokens, self.num_kv_heads, self.head_dim).transpose(1, 2)
        if self.q_norm is not None:
            queries, keys = self.q_norm(queries), self.k_norm(keys)
        if self.rotary is not None:
            queries, keys = self.rotary(queries, start), self.rotary(keys, start)
        return queries, keys, values

    def project(
        self, x: torch.Tensor, extra_values: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values, unsplit into heads (batch, tokens, width).

        `extra_values` (batch, tokens, num_kv_heads * head_dim) is added to the
        values: a value embedding (value_embeddings.py), before any cache stores them.
        """
        kv_width = self.num_kv_heads * self.head_dim
        queries, keys, values = self.qkv(x).split([self.d_out, kv_width, kv_width], dim=-1)
        if extra_values is not None:
            values = values + extra_values.to(values.dtype)
        return queries, keys, values

    def _share_kv(
        self, keys: torch.Tensor, values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Grouped-query attention: query head h reads key/value head h // group_size.

        Repeating each key/value head for its group gives every query head a
        partner; the cache and the weights hold only num_kv_heads heads.
        """
        group_size = self.num_heads // self.num_kv_heads
        if group_size == 1:
            return keys, values
        return (
            keys.repeat_interleave(group_size, dim=1),
            values.repeat_interleave(group_size, dim=1),
        )

    def _merge_heads(self, context: torch.Tensor) -> torch.Tensor:
        batch, _, tokens, _ = context.shape
        return self.out_proj(context.transpose(1, 2).reshape(batch, tokens, self.d_out))

    def forward(
        self,
        x: torch.Tensor,
        kv_cache: KVCache | None = None,
        layer: int = 0,
        extra_values: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attend causally. With `kv_cache`, `x` holds only the new tokens.

        The cache keeps the keys and values of earlier tokens, so generating one
        token costs one token's projections instead of the whole sequence's.
        `extra_values` is added to the values (see `project`).
        """
        if not self.use_sdpa and kv_cache is None:
            return self.forward_with_weights(x, extra_values)[0]
        start = 0 if kv_cache is None else kv_cache.length
        _check_input(x, self.d_in)
        if start + x.shape[1] > self.context_length:
            raise ValueError(
                f"{start + x.shape[1]} tokens exceed context_length={self.context_length}; "
                "truncate the input to the last context_length tokens"
            )
        queries, keys, values = self._heads(x, start, extra_values)
        if kv_cache is not None:
            keys, values = kv_cache.store(layer, keys, values)
        keys, values = self._share_kv(keys, values)
        dropout = self.dropout if self.training else 0.0
        tokens = queries.shape[2]
        if start == 0 or tokens == 1:
            # A single new token may see everything cached; otherwise the usual causal mask.
            context = F.scaled_dot_product_attention(
                queries, keys, values, dropout_p=dropout, is_causal=tokens > 1
            )
        else:
            # New tokens at positions start..start+tokens-1 see every key up to their own position.
            positions = torch.arange(start, start + tokens, device=x.device)
            allowed = torch.arange(keys.shape[2], device=x.device) <= positions[:, None]
            context = F.scaled_dot_product_attention(
                queries, keys, values, attn_mask=allowed, dropout_p=dropout
            )
        return self._merge_heads(context)

    def forward_with_weights(
        self, x: torch.Tensor, extra_values: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The explicit path: the masked softmax written out.

        Returns the output and the attention weights (batch, heads, tokens, tokens).
        """
        _check_input(x, self.d_in, self.context_length)
        queries, keys, values = self._heads(x, 0, extra_values)
        keys, values = self._share_kv(keys, values)
        tokens = x.shape[1]
        scores = queries @ keys.transpose(-2, -1) / math.sqrt(self.head_dim)
        future = torch.triu(
            torch.ones(tokens, tokens, dtype=torch.bool, device=x.device), diagonal=1
        )
        weights = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
        dropped = F.dropout(weights, self.dropout, self.training)
        return self._merge_heads(dropped @ values), weights


def _check_heads(d_out: int, num_heads: int, num_kv_heads: int) -> None:
    if num_heads < 1 or d_out % num_heads != 0:
        raise ValueError(
            f"d_out={d_out} must be divisible by num_heads={num_heads} "
            f"(each head gets d_out / num_heads features)"
        )
    if num_kv_heads < 1 or num_heads % num_kv_heads != 0:
        raise ValueError(
            f"num_kv_heads={num_kv_heads} must divide num_heads={num_heads} "
            "(each key/value head serves a group of query heads)"
        )
