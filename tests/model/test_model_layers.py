"""The modern layers one at a time: RoPE, RMSNorm, SwiGLU and grouped-query attention.

Each is compared with an independent reference: the formula written out here,
and transformers' Llama / Qwen3 modules.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from slm_model import KVCache, MultiHeadAttention, RMSNorm, RotaryEmbedding, SwiGLU, get_gpt_config
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import (
    LlamaMLP,
    LlamaRMSNorm,
    LlamaRotaryEmbedding,
    apply_rotary_pos_emb,
)

deterministic = settings(max_examples=40, deadline=None, derandomize=True)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# -------------------------------------------------------------------- RoPE
@pytest.mark.parametrize(("head_dim", "theta"), [(8, 10000.0), (16, 500.0), (64, 500000.0)])
def test_rope_matches_transformers(head_dim, theta):
    positions = 40
    config = LlamaConfig(
        hidden_size=2 * head_dim,
        num_attention_heads=2,
        head_dim=head_dim,
        max_position_embeddings=positions,
        rope_theta=theta,
    )
    q, k = torch.randn(2, 3, positions, head_dim), torch.randn(2, 1, positions, head_dim)
    cos, sin = LlamaRotaryEmbedding(config)(q, torch.arange(positions)[None])
    expected_q, expected_k = apply_rotary_pos_emb(q, k, cos, sin)
    rope = RotaryEmbedding(head_dim, positions, theta)
    torch.testing.assert_close(rope(q), expected_q)
    torch.testing.assert_close(rope(k), expected_k)


def test_rope_is_a_rotation_of_each_pair():
    rope = RotaryEmbedding(4, 8, theta=100.0)
    x = torch.randn(1, 1, 8, 4)
    rotated = rope(x)
    # Pairs (0, 2) and (1, 3) keep their length, and position 0 is not turned at all.
    for pair in ([0, 2], [1, 3]):
        torch.testing.assert_close(rotated[..., pair].norm(dim=-1), x[..., pair].norm(dim=-1))
    torch.testing.assert_close(rotated[:, :, 0], x[:, :, 0])
    # Pair 0 turns by one radian per position: (cos p, sin p) from (1, 0).
    unit = torch.zeros(1, 1, 8, 4)
    unit[..., 0] = 1.0
    angles = torch.arange(8.0)
    torch.testing.assert_close(rope(unit)[0, 0, :, 0], angles.cos())
    torch.testing.assert_close(rope(unit)[0, 0, :, 2], angles.sin())


@deterministic
@given(start=st.integers(0, 24), tokens=st.integers(1, 8))
def test_rope_offset_equals_slice_of_full_sequence(start, tokens):
    rope = RotaryEmbedding(8, 32)
    x = torch.randn(2, 3, 32, 8, generator=torch.Generator().manual_seed(start))
    piece = x[:, :, start : start + tokens]
    torch.testing.assert_close(rope(piece, start), rope(x)[:, :, start : start + tokens])


@deterministic
@given(m=st.integers(0, 30), n=st.integers(0, 30), shift=st.integers(-30, 30))
def test_rope_scores_depend_only_on_relative_position(m, n, shift):
    rope = RotaryEmbedding(16, 64)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)
    shift = max(shift, -min(m, n))

    def score(position_q: int, position_k: int) -> torch.Tensor:
        return (rope(q, position_q) * rope(k, position_k)).sum()

    torch.testing.assert_close(score(m, n), score(m + shift, n + shift), atol=1e-5, rtol=1e-5)


def test_rope_rejects_odd_dims_and_far_positions():
    with pytest.raises(ValueError, match="even"):
        RotaryEmbedding(7, 8)
    with pytest.raises(ValueError, match="max_positions"):
        RotaryEmbedding(8, 8)(torch.randn(1, 1, 3, 8), start=6)


# ----------------------------------------------------------------- RMSNorm
def test_rms_norm_matches_formula_and_transformers():
    norm = RMSNorm(10, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(10))
    x = torch.randn(3, 5, 10) * 4
    expected = norm.weight * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(norm(x), expected)
    theirs = LlamaRMSNorm(10, eps=1e-6)
    theirs.weight.data.copy_(norm.weight)
    torch.testing.assert_close(norm(x), theirs(x))
    assert norm(x).shape == x.shape
    assert sum(p.numel() for p in norm.parameters()) == 10  # a scale, no shift


def test_rms_norm_works_in_float32_for_bfloat16_input():
    norm = RMSNorm(64)
    x = (torch.randn(4, 64) * 100).bfloat16()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "cannot dispatch to fused implementation"
        out = norm(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, norm(x.float()).bfloat16(), atol=0, rtol=0)


# ------------------------------------------------------------------ SwiGLU
def test_swiglu_matches_formula_and_transformers():
    config = get_gpt_config("llama-tiny", n_embd=16, n_head=2, n_kv_head=1, intermediate_size=24)
    ours = SwiGLU(config)
    assert ours.fc.weight.shape == (48, 16) and ours.proj.weight.shape == (16, 24)
    x = torch.randn(2, 5, 16)
    gate, up = ours.fc.weight[:24], ours.fc.weight[24:]
    expected = (F.silu(x @ gate.T) * (x @ up.T)) @ ours.proj.weight.T
    torch.testing.assert_close(ours(x), expected)
    theirs = LlamaMLP(LlamaConfig(hidden_size=16, intermediate_size=24, num_attention_heads=2))
    with torch.no_grad():
        theirs.gate_proj.weight.copy_(gate)
        theirs.up_proj.weight.copy_(up)
        theirs.down_proj.weight.copy_(ours.proj.weight)
    torch.testing.assert_close(ours(x), theirs(x))


def test_swiglu_default_width_keeps_the_parameter_count():
    config = get_gpt_config("tiny", mlp="swiglu", n_embd=192, n_head=2)
    assert config.mlp_hidden == 512  # 8/3 * 192, already a multiple of 64
    swiglu = sum(p.numel() for p in SwiGLU(config).parameters() if p.dim() == 2)
    assert swiglu == 3 * 192 * 512 == 2 * 192 * (4 * 192)


# ------------------------------------------------- grouped-query attention
def reference_gqa(
    layer: MultiHeadAttention, x: torch.Tensor, rope: RotaryEmbedding | None = None
) -> torch.Tensor:
    """Grouped-query attention head by head, with loops instead of reshapes."""
    tokens = x.shape[1]
    heads, kv_heads, d = layer.num_heads, layer.num_kv_heads, layer.head_dim
    w_q, w_k, w_v = layer.qkv.weight.split([heads * d, kv_heads * d, kv_heads * d])
    outputs = []
    for h in range(heads):
        kv = h // (heads // kv_heads)
        q = x @ w_q[h * d : (h + 1) * d].T
        k = x @ w_k[kv * d : (kv + 1) * d].T
        v = x @ w_v[kv * d : (kv + 1) * d].T
        if layer.q_norm is not None:
            q, k = layer.q_norm(q), layer.k_norm(k)
        if rope is not None:
            q, k = rope(q[:, None])[:, 0], rope(k[:, None])[:, 0]
        scores = q @ k.transpose(1, 2) / math.sqrt(d)
        future = torch.ones(tokens, tokens, dtype=torch.bool).triu(1)
        outputs.append(torch.softmax(scores.masked_fill(future, -torch.inf), -1) @ v)
    return layer.out_proj(torch.cat(outputs, dim=-1))


@pytest.mark.parametrize("kv_heads", [4, 2, 1], ids=["mha", "gqa", "mqa"])
@pytest.mark.parametrize("use_rope", [False, True], ids=["no-rope", "rope"])
@pytest.mark.parametrize("qk_norm", [False, True], ids=["", "qk-norm"])
def test_gqa_matches_head_by_head_reference(kv_heads, use_rope, qk_norm):
    rope = RotaryEmbedding(4, 10) if use_rope else None
    layer = MultiHeadAttention(
        8, 16, 10, num_heads=4, num_kv_heads=kv_heads, rotary=rope, qk_norm=qk_norm
    )
    assert layer.qkv.weight.shape == ((4 + 2 * kv_heads) * 4, 8)
    if qk_norm:
        with torch.no_grad():
            layer.q_norm.weight.uniform_(0.5, 1.5)
            layer.k_norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(2, 10, 8)
    expected = reference_gqa(layer, x, rope)
    torch.testing.assert_close(layer(x), expected, atol=1e-6, rtol=1e-5)
    explicit, weights = layer.forward_with_weights(x)
    torch.testing.assert_close(explicit, expected, atol=1e-6, rtol=1e-5)
    assert weights.shape == (2, 4, 10, 10) and torch.all(weights.triu(diagonal=1) == 0)
    layer.use_sdpa = False
    torch.testing.assert_close(layer(x), explicit)


@pytest.mark.parametrize("kv_heads", [2, 1])
def test_gqa_kv_cache_in_chunks_equals_full_sequence(kv_heads):
    layer = MultiHeadAttention(
        8, 16, 12, num_heads=4, num_kv_heads=kv_heads, rotary=RotaryEmbedding(4, 12), qk_norm=True
    ).eval()
    x = torch.randn(2, 12, 8)
    cache = KVCache(1, 2, kv_heads, 12, 4)
    assert cache.keys[0].shape == (2, kv_heads, 12, 4)  # only the shared heads are stored
    pieces = []
    for start, end in [(0, 5), (5, 8), (8, 9), (9, 12)]:
        pieces.append(layer(x[:, start:end], cache, 0))
        cache.length = end
    torch.testing.assert_close(torch.cat(pieces, dim=1), layer(x), atol=1e-6, rtol=1e-5)


def test_gqa_rejects_heads_that_do_not_divide():
    with pytest.raises(ValueError, match="must divide num_heads=4"):
        MultiHeadAttention(8, 16, 4, num_heads=4, num_kv_heads=3)
    with pytest.raises(ValueError, match="must divide num_heads=4"):
        MultiHeadAttention(8, 16, 4, num_heads=4, num_kv_heads=0)
