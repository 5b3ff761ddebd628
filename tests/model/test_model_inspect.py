"""slm_model.inspect against by-hand computations: attention, surprise, logit lens, next tokens."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from slm_model import (
    GPTModel,
    attention_maps,
    get_gpt_config,
    logit_lens,
    token_surprise,
    top_next_tokens,
)

CONFIGS = {
    "gpt2": dict(),
    "rope-gqa": dict(pos="rope", n_head=4, n_kv_head=2),
    "llama-qknorm": dict(pos="rope", norm="rmsnorm", mlp="swiglu", n_head=4, n_kv_head=1,
                         qk_norm=True, bias=False),
}  # fmt: skip


def model_for(name: str) -> GPTModel:
    torch.manual_seed(0)
    model = GPTModel(get_gpt_config("tiny", block_size=16, **CONFIGS[name]))
    # Larger weights than at initialisation, so the attention is far from uniform.
    with torch.no_grad():
        for block in model.blocks:
            block.attn.qkv.weight.mul_(8)
    return model.eval()


def by_hand_attention(model: GPTModel, ids: torch.Tensor) -> list[torch.Tensor]:
    """softmax(QK^T / sqrt(d)) with the causal mask, each block run by hand from the embeddings."""
    c = model.config
    tokens = ids.shape[1]
    x = model.tok_emb(ids)
    if model.pos_emb is not None:
        x = x + model.pos_emb(torch.arange(tokens))
    maps = []
    for block in model.blocks:
        attn = block.attn
        h = block.norm1(x)
        kv_width = c.kv_heads * c.head_dim
        q, k, v = attn.qkv(h).split([c.n_embd, kv_width, kv_width], dim=-1)
        q = q.view(1, tokens, c.n_head, c.head_dim).transpose(1, 2)
        k = k.view(1, tokens, c.kv_heads, c.head_dim).transpose(1, 2)
        v = v.view(1, tokens, c.kv_heads, c.head_dim).transpose(1, 2)
        if c.qk_norm:
            q, k = attn.q_norm(q), attn.k_norm(k)
        if attn.rotary is not None:
            q, k = attn.rotary(q), attn.rotary(k)
        group = c.n_head // c.kv_heads
        k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
        scores = q @ k.transpose(-2, -1) / math.sqrt(c.head_dim)
        causal = torch.tril(torch.ones(tokens, tokens, dtype=torch.bool))
        weights = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)
        maps.append(weights[0])
        context = (weights @ v).transpose(1, 2).reshape(1, tokens, c.n_embd)
        x = x + attn.out_proj(context)
        x = x + block.mlp(block.norm2(x))
    return maps


@pytest.mark.parametrize("name", CONFIGS)
def test_attention_maps_equal_the_masked_softmax_by_hand(name):
    model = model_for(name)
    ids = torch.randint(
        0, model.config.vocab_size, (1, 11), generator=torch.Generator().manual_seed(1)
    )
    maps = attention_maps(model, ids)
    c = model.config
    assert maps.shape == (c.n_layer, c.n_head, 11, 11)
    with torch.no_grad():
        expected = torch.stack(by_hand_attention(model, ids))
    torch.testing.assert_close(maps, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(maps.sum(-1), torch.ones(c.n_layer, c.n_head, 11))
    assert torch.all(maps.triu(diagonal=1) == 0)
    assert maps.max() > 0.5  # not uniform: a real test of the scores
    if c.kv_heads < c.n_head:  # query heads that share keys still attend differently
        assert not torch.allclose(maps[:, 0], maps[:, 1])


def test_inspection_leaves_the_model_and_its_fast_path_alone():
    model = model_for("rope-gqa").train()
    ids = [1, 2, 3, 4, 5]
    attention_maps(model, ids)
    assert model.training  # restored
    assert all(not block._forward_hooks and not block._forward_pre_hooks for block in model.blocks)
    assert all(not block.attn._forward_hooks for block in model.blocks)
    assert all(block.attn.use_sdpa for block in model.blocks)


@pytest.mark.parametrize("name", ["gpt2", "llama-qknorm"])
def test_token_surprise_is_the_per_token_cross_entropy(name):
    model = model_for(name)
    ids = torch.tensor([[5, 9, 2, 400, 33, 7, 7, 81]])
    surprise = token_surprise(model, ids)
    with torch.no_grad():
        logits = model(ids)
    expected = F.cross_entropy(logits[0, :-1], ids[0, 1:], reduction="none")
    torch.testing.assert_close(surprise, expected)
    with torch.no_grad():
        _, loss = model(ids[:, :-1], ids[:, 1:])
    torch.testing.assert_close(surprise.mean(), loss)  # the mean is the training loss
    assert token_surprise(model, ids[0].tolist()).shape == (7,)  # a plain list works too


@pytest.mark.parametrize("name", ["gpt2", "rope-gqa"])
def test_logit_lens_last_layer_is_the_models_own_prediction(name):
    model = model_for(name)
    ids = [3, 1, 4, 1, 5, 9, 2, 6]
    lens = logit_lens(model, ids, top_k=4)
    assert lens.token_ids.shape == lens.probabilities.shape == (model.config.n_layer + 1, 8, 4)
    with torch.no_grad():
        probabilities = torch.softmax(model(torch.tensor([ids]))[0], dim=-1)
    best = probabilities.topk(4)
    assert torch.equal(lens.token_ids[-1], best.indices)
    torch.testing.assert_close(lens.probabilities[-1], best.values)
    # Row 0 is the embeddings alone, read through the final norm and the head.
    with torch.no_grad():
        x = model.tok_emb(torch.tensor(ids))
        if model.pos_emb is not None:
            x = x + model.pos_emb(torch.arange(8))
        first = torch.softmax(model.lm_head(model.final_norm(x)), dim=-1).topk(4)
    assert torch.equal(lens.token_ids[0], first.indices)
    assert torch.all(lens.probabilities[:, :, :-1] >= lens.probabilities[:, :, 1:])


def test_top_next_tokens_after_the_last_token_or_at_a_position():
    model = model_for("gpt2")
    ids = [10, 20, 30, 40, 50]
    with torch.no_grad():
        probabilities = torch.softmax(model(torch.tensor([ids]))[0], dim=-1)
    last = top_next_tokens(model, ids, k=3)
    assert last.position == 4 and last.token_ids == probabilities[4].topk(3).indices.tolist()
    assert last.probabilities == pytest.approx(probabilities[4].topk(3).values.tolist())
    second = top_next_tokens(model, ids, k=3, at=1)
    assert second.position == 1 and second.token_ids == probabilities[1].topk(3).indices.tolist()
    assert top_next_tokens(model, ids, at=-2).position == 3


def test_bad_input_says_what_to_do():
    model = model_for("gpt2")
    with pytest.raises(ValueError, match=r"outside the text.s 3 tokens; choose 0\.\.2"):
        top_next_tokens(model, [1, 2, 3], at=3)
    with pytest.raises(ValueError, match="exceed the model's context of 16; keep only the last 16"):
        attention_maps(model, list(range(17)))
    with pytest.raises(ValueError, match=r"token ids must be in 0\.\.511"):
        token_surprise(model, [1, 512])
    with pytest.raises(ValueError, match="non-empty"):
        logit_lens(model, [])
