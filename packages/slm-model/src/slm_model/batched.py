"""Decoding many independent sequences at once, each at its own position (for a server).

`generate` runs a batch whose rows all have the same length, so one KV cache
length serves them all. A server's requests arrive at different times with
prompts of different lengths, so its rows sit at different positions. Here
every row of a `RowCache` keeps its own length:

- `prefill_row` runs one prompt into one row, exactly as `generate` runs a
  prompt (the model's own forward on a batch of one, writing into that row's
  slice of the cache), and returns the logits for its first new token;
- `decode_rows` then advances rows 0..n-1 by one token each in one forward
  pass: each row's token gets its own position (its learned position vector,
  or its RoPE angles), its key and value are written at that position, and a
  mask lets each row's query see only its own keys up to there.

So a row's tokens are the ones `generate` would produce for it alone (the same
weights, positions and keys; only the order of floating-point sums may
differ), whatever the other rows hold. Rows are used lowest first, so the pass
covers a contiguous block of the cache without copying it; a free row inside
that block is fed a dummy token and its output is ignored.

With the smear gate (smear.py) each row also keeps the embedding of its last
token, which its next token mixes in.

The cache starts short and doubles (up to the context) when a row needs
more, so its memory follows the longest sequence in it rather than the
context: 16 rows of SmolLM2-135M at its full 8,192 tokens would be 6 GB.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .attention import MultiHeadAttention
from .kv_cache import KVCache
from .model import GPTModel, TransformerBlock
from .rope import rotate_half


class RowCache(KVCache):
    """Keys and values (rows, kv_heads, room, head_dim) per layer, and each row's length."""

    def __init__(self, model: GPTModel, rows: int, room: int = 128) -> None:
        c, weight = model.config, model.tok_emb.weight
        super().__init__(
            c.n_layer, rows, c.kv_heads, min(room, c.block_size), c.head_dim,
            device=weight.device, dtype=weight.dtype,
        )  # fmt: skip
        self.block_size = c.block_size
        self.lengths = torch.zeros(rows, dtype=torch.long, device=weight.device)
        # Each row's last token embedding, for the smear gate (unused without one).
        self.last_embeddings = weight.new_zeros((rows, 1, c.n_embd))

    def make_room(self, tokens: int) -> None:
        """Grow (doubling, up to the context) until every row can hold `tokens`."""
        if tokens <= self.context_length:
            return
        room = min(self.block_size, max(tokens, 2 * self.context_length))
        for stored in (self.keys, self.values):
            for layer, old in enumerate(stored):
                stored[layer] = old.new_zeros((*old.shape[:2], room, old.shape[3]))
                stored[layer][:, :, : old.shape[2]] = old
        self.context_length = room

    def row(self, index: int) -> KVCache:
        """Row `index` as a batch-of-one KVCache that writes into this cache in place."""
        view = KVCache.__new__(KVCache)
        view.keys = [keys[index : index + 1] for keys in self.keys]
        view.values = [values[index : index + 1] for values in self.values]
        view.context_length, view.length, view.previous = self.context_length, 0, None
        return view


@torch.inference_mode()
def prefill_row(model: GPTModel, cache: RowCache, row: int, ids: list[int]) -> torch.Tensor:
    """Run prompt `ids` into `row` (forgetting what it held); logits (vocab,) of the next token."""
    if not 0 < len(ids) <= model.config.block_size:
        raise ValueError(f"a prompt holds 1..{model.config.block_size} tokens, got {len(ids)}")
    device = model.tok_emb.weight.device
    cache.make_room(len(ids))
    view = cache.row(row)
    hidden = model.hidden_states(torch.tensor([ids], device=device), view)
    cache.lengths[row] = len(ids)
    if view.previous is not None:
        cache.last_embeddings[row] = view.previous[0]
    return model.logits(hidden[0, -1])


@torch.inference_mode()
def decode_rows(model: GPTModel, cache: RowCache, tokens: torch.Tensor) -> torch.Tensor:
    """Append `tokens` (n,) to rows 0..n-1, each at its own position; logits (n, vocab)."""
    rows = tokens.shape[0]
    positions = cache.lengths[:rows]
    if int(positions.max()) >= model.config.block_size:
        raise ValueError(f"a row is full: {model.config.block_size} tokens is the context")
    cache.make_room(int(positions.max()) + 1)
    ids = tokens[:, None]
    x = model.tok_emb(ids)
    if model.smear is not None:
        previous = cache.last_embeddings[:rows].clone()
        cache.last_embeddings[:rows] = x
        x = model.smear(x, previous)
    if model.pos_emb is not None:
        x = x + model.pos_emb(positions)[:, None]
    span = int(positions.max()) + 1
    allowed = (torch.arange(span, device=x.device) <= positions[:, None])[:, None, None]

    def step(layer: int, block: TransformerBlock, x: torch.Tensor) -> torch.Tensor:
        h = block.norm1(x)
        extra = block.extra_values(ids, h)
        x = x + _attend(block.attn, h, cache, layer, positions, allowed, extra)
        return x + block.mlp(block.norm2(x))

    x = model.run_blocks(x, step)
    cache.lengths[:rows] += 1
    return model.logits(model.final_norm(x)[:, -1])


def _attend(
    attn: MultiHeadAttention,
    x: torch.Tensor,
    cache: RowCache,
    layer: int,
    positions: torch.Tensor,
    allowed: torch.Tensor,
    extra_values: torch.Tensor | None = None,
) -> torch.Tensor:
    """`MultiHeadAttention.forward` for one new token per row, at per-row positions."""
    rows, span = x.shape[0], allowed.shape[-1]
    queries, keys, values = attn.project(x, extra_values)
    queries = queries.view(rows, 1, attn.num_heads, attn.head_dim).transpose(1, 2)
    keys = keys.view(rows, attn.num_kv_heads, attn.head_dim)
    values = values.view(rows, attn.num_kv_heads, attn.head_dim)
    if attn.q_norm is not None:
        queries, keys = attn.q_norm(queries), attn.k_norm(keys)
    if attn.rotary is not None:
        cos = attn.rotary.cos[positions].to(x.dtype)  # (rows, head_dim)
        sin = attn.rotary.sin[positions].to(x.dtype)
        queries = queries * cos[:, None, None] + rotate_half(queries) * sin[:, None, None]
        keys = keys * cos[:, None] + rotate_half(keys) * sin[:, None]
    every_row = torch.arange(rows, device=x.device)
    cache.keys[layer][every_row, :, positions] = keys
    cache.values[layer][every_row, :, positions] = values
    stored_keys, stored_values = attn._share_kv(
        cache.keys[layer][:rows, :, :span], cache.values[layer][:rows, :, :span]
    )
    context = F.scaled_dot_product_attention(queries, stored_keys, stored_values, attn_mask=allowed)
    return attn._merge_heads(context)
