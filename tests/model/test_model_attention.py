"""Attention layers against hand-written formulas and torch.nn.MultiheadAttention."""

from __future__ import annotations

import math

import pytest
import torch
from slm_model import CausalAttention, KVCache, MultiHeadAttention, SelfAttention
from torch import nn


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_self_attention_is_softmax_of_scaled_scores():
    layer = SelfAttention(5, 3)
    x = torch.randn(2, 4, 5)
    q, k, v = x @ layer.W_query.weight.T, x @ layer.W_key.weight.T, x @ layer.W_value.weight.T
    expected = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(3), dim=-1) @ v
    torch.testing.assert_close(layer(x), expected)
    assert layer(x).shape == (2, 4, 3)


def test_causal_attention_masks_the_future_and_drops_weights():
    layer = CausalAttention(5, 3, context_length=8)
    x = torch.randn(2, 6, 5)
    weights = layer.attention_weights(x)
    assert torch.all(weights.triu(diagonal=1) == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 6))
    first_token_only = layer(x[:, :1])
    torch.testing.assert_close(layer(x)[:, :1], first_token_only)

    dropping = CausalAttention(5, 3, context_length=8, dropout=0.5).train()
    dropped = dropping.attention_weights(x)
    assert (dropped == 0).sum() > (weights == 0).sum()  # dropout zeroes some weights...
    assert dropped.max() > 1.0 - 1e-6  # ...and rescales the rest by 1 / (1 - p)


def test_multi_head_matches_torch_multihead_attention():
    d, heads, tokens = 12, 3, 7
    ours = MultiHeadAttention(d, d, context_length=16, num_heads=heads, qkv_bias=True)
    reference = nn.MultiheadAttention(d, heads, bias=True, batch_first=True)
    with torch.no_grad():
        reference.in_proj_weight.copy_(ours.qkv.weight)
        reference.in_proj_bias.copy_(ours.qkv.bias)
        reference.out_proj.weight.copy_(ours.out_proj.weight)
        reference.out_proj.bias.copy_(ours.out_proj.bias)
    x = torch.randn(2, tokens, d)
    mask = torch.triu(torch.ones(tokens, tokens, dtype=torch.bool), diagonal=1)
    expected, expected_weights = reference(x, x, x, attn_mask=mask, average_attn_weights=False)
    torch.testing.assert_close(ours(x), expected, atol=1e-6, rtol=1e-5)
    out, weights = ours.forward_with_weights(x)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(weights, expected_weights, atol=1e-6, rtol=1e-5)


def test_fast_path_equals_explicit_path():
    layer = MultiHeadAttention(8, 16, context_length=10, num_heads=4)
    x = torch.randn(3, 10, 8)
    fast = layer(x)
    explicit, weights = layer.forward_with_weights(x)
    torch.testing.assert_close(fast, explicit, atol=1e-6, rtol=1e-5)
    layer.use_sdpa = False
    torch.testing.assert_close(layer(x), explicit)
    assert weights.shape == (3, 4, 10, 10)
    assert torch.all(weights.triu(diagonal=1) == 0)


def test_kv_cache_in_chunks_equals_full_sequence():
    layer = MultiHeadAttention(8, 8, context_length=12, num_heads=2).eval()
    x = torch.randn(2, 12, 8)
    cache = KVCache(1, 2, 2, 12, 4)
    pieces = []
    for start, end in [(0, 5), (5, 8), (8, 9), (9, 12)]:
        pieces.append(layer(x[:, start:end], cache, 0))
        cache.length = end
    torch.testing.assert_close(torch.cat(pieces, dim=1), layer(x), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: MultiHeadAttention(8, 10, 4, num_heads=3), "divisible by num_heads"),
        (lambda: MultiHeadAttention(8, 8, 4, num_heads=0), "divisible by num_heads"),
    ],
)
def test_bad_construction(build, message):
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize(
    "layer",
    [
        SelfAttention(4, 4),
        CausalAttention(4, 4, context_length=3),
        MultiHeadAttention(4, 4, context_length=3, num_heads=2),
    ],
    ids=["self", "causal", "multi-head"],
)
def test_bad_inputs(layer):
    with pytest.raises(ValueError, match="unsqueeze"):
        layer(torch.randn(3, 4))
    with pytest.raises(ValueError, match="d_in=4"):
        layer(torch.randn(1, 3, 5))
    if type(layer) is not SelfAttention:  # the unmasked layer has no context limit
        with pytest.raises(ValueError, match="context_length=3"):
            layer(torch.randn(1, 4, 4))
    if isinstance(layer, MultiHeadAttention):
        with pytest.raises(ValueError, match="context_length=3"):
            layer.forward_with_weights(torch.randn(1, 4, 4))
