"""Parity with transformers' LlamaForCausalLM (and Qwen3, for QK-norm), in both directions."""

from __future__ import annotations

import pytest
import torch
from slm_model import GPTModel, config_from_llama, generate, get_gpt_config, to_llama_config
from transformers import (
    AutoConfig,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

SHAPE = dict(
    vocab_size=300,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,  # grouped-query attention
    max_position_embeddings=48,
    rope_theta=500.0,  # small, so that positions turn far within 48 tokens
    rms_norm_eps=1e-5,
)


def perturbed(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Norms start at 1; perturb every weight so a swapped or misplaced tensor shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.02)
    return model.eval()


def hf_llama(seed: int = 0, **overrides) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return perturbed(LlamaForCausalLM(LlamaConfig(**{**SHAPE, **overrides})), seed)


def tokens(batch: int = 2, length: int = 40) -> torch.Tensor:
    return torch.randint(0, 300, (batch, length), generator=torch.Generator().manual_seed(1))


def assert_same_logits(ours: GPTModel, theirs: torch.nn.Module) -> None:
    idx = tokens()
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), theirs(idx).logits, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"tie_word_embeddings": True}, {"num_key_value_heads": 1}, {"num_key_value_heads": 4}],
    ids=["gqa", "tied", "mqa", "mha"],
)
def test_import_from_transformers(overrides):
    theirs = hf_llama(**overrides)
    config = config_from_llama(theirs.config)
    assert config.kv_heads == theirs.config.num_key_value_heads
    assert config.tie_weights == theirs.config.tie_word_embeddings
    ours = GPTModel.from_llama_state_dict(theirs.state_dict(), config).eval()
    assert_same_logits(ours, theirs)


def test_export_to_transformers():
    torch.manual_seed(3)
    config = get_gpt_config(
        "llama-tiny", vocab_size=300, block_size=48, n_layer=3, tie_weights=False, rope_theta=500.0
    )
    ours = perturbed(GPTModel(config), seed=3)
    theirs = LlamaForCausalLM(LlamaConfig(**to_llama_config(config))).eval()
    missing, unexpected = theirs.load_state_dict(ours.to_llama_state_dict(), strict=True)
    assert not missing and not unexpected
    assert_same_logits(ours, theirs)


def test_export_with_biases_and_tied_head():
    config = get_gpt_config("llama-tiny", vocab_size=300, block_size=48, bias=True)
    ours = perturbed(GPTModel(config), seed=4)
    theirs = LlamaForCausalLM(LlamaConfig(**to_llama_config(config))).eval()
    theirs.load_state_dict(ours.to_llama_state_dict())
    assert_same_logits(ours, theirs)
    back = GPTModel.from_llama_state_dict(theirs.state_dict(), config_from_llama(theirs.config))
    assert back.config == config
    assert all(torch.equal(a, b) for a, b in zip(back.parameters(), ours.parameters(), strict=True))


def test_loss_matches_transformers():
    theirs = hf_llama()
    ours = GPTModel.from_llama_state_dict(theirs.state_dict(), config_from_llama(theirs.config))
    idx = tokens()
    with torch.no_grad():
        their_loss = theirs(idx, labels=idx).loss  # transformers shifts the labels itself
        _, our_loss = ours.eval()(idx[:, :-1], idx[:, 1:])
    torch.testing.assert_close(our_loss, their_loss, atol=1e-5, rtol=0)


def test_greedy_generation_matches_transformers():
    theirs = hf_llama()
    ours = GPTModel.from_llama_state_dict(theirs.state_dict(), config_from_llama(theirs.config))
    prompt = tokens(batch=1, length=5)
    expected = theirs.generate(
        prompt,
        max_new_tokens=40,
        do_sample=False,
        pad_token_id=0,
        attention_mask=torch.ones_like(prompt),
    )
    assert torch.equal(generate(ours, prompt, 40, temperature=0), expected)
    assert torch.equal(generate(ours, prompt, 40, temperature=0, use_cache=False), expected)


def test_qk_norm_matches_qwen3():
    torch.manual_seed(0)
    hf_config = Qwen3Config(**SHAPE, head_dim=16)
    theirs = perturbed(Qwen3ForCausalLM(hf_config), seed=5)
    config = config_from_llama(hf_config)
    assert config.qk_norm
    ours = GPTModel.from_llama_state_dict(theirs.state_dict(), config).eval()
    assert_same_logits(ours, theirs)
    exported = Qwen3ForCausalLM(Qwen3Config(**to_llama_config(config))).eval()
    exported.load_state_dict(ours.to_llama_state_dict(), strict=True)
    assert_same_logits(ours, exported)


# Llama 3.2's scaling, shrunk to this model: with head_dim 16 and theta 500, RoPE's eight
# pairs have wavelengths from 6 to 2,300 tokens, so some keep their speed (< 16 / 4), some
# blend and most stretch (> 16).
LLAMA3 = {
    "rope_type": "llama3",
    "factor": 32.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 16,
}


def test_llama3_rope_scaling_matches_transformers_both_ways():
    theirs = hf_llama(seed=6, rope_scaling=dict(LLAMA3))  # transformers adds to it
    config = config_from_llama(theirs.config)
    assert config.rope_scaling == LLAMA3 and config.rope_theta == 500.0
    ours = GPTModel.from_llama_state_dict(theirs.state_dict(), config).eval()
    assert_same_logits(ours, theirs)
    plain = GPTModel.from_llama_state_dict(
        theirs.state_dict(), config_from_llama(theirs.config, rope_scaling=None)
    ).eval()
    with torch.no_grad():  # the scaling matters at these positions
        assert (plain(tokens()) - ours(tokens())).abs().max() > 1e-3
    exported = LlamaForCausalLM(AutoConfig.for_model(**to_llama_config(config))).eval()
    exported.load_state_dict(ours.to_llama_state_dict(), strict=True)
    assert_same_logits(ours, exported)


@pytest.mark.parametrize("tied", [False, True])
def test_qwen2_attention_biases_match_transformers_both_ways(tied):
    torch.manual_seed(0)
    hf_config = Qwen2Config(**SHAPE, tie_word_embeddings=tied)
    theirs = perturbed(Qwen2ForCausalLM(hf_config), seed=7)
    config = config_from_llama(hf_config)
    assert (config.bias, config.qkv_bias, config.tie_weights) == (False, True, tied)
    ours = GPTModel.from_llama_state_dict(theirs.state_dict(), config).eval()
    assert ours.blocks[0].attn.qkv.bias is not None and ours.blocks[0].attn.out_proj.bias is None
    assert_same_logits(ours, theirs)
    exported = Qwen2ForCausalLM(Qwen2Config(**to_llama_config(config))).eval()
    exported.load_state_dict(ours.to_llama_state_dict(), strict=True)
    assert_same_logits(ours, exported)


def test_config_mapping_round_trips():
    for overrides in [
        {},
        {"n_kv_head": 1, "tie_weights": False},
        {"qk_norm": True},
        {"qkv_bias": True, "bias": False},
        {"rope_scaling": LLAMA3},
    ]:
        config = get_gpt_config("llama-small", **overrides)
        assert config_from_llama(to_llama_config(config)) == config  # as a config.json
        assert config_from_llama(AutoConfig.for_model(**to_llama_config(config))) == config
    assert config_from_llama(hf_llama().config, block_size=16).block_size == 16


def test_llama_model_names_without_prefix():
    theirs = hf_llama()
    bare = {k.removeprefix("model."): v for k, v in theirs.state_dict().items()}
    ours = GPTModel.from_llama_state_dict(bare, config_from_llama(theirs.config)).eval()
    assert_same_logits(ours, theirs)


def test_mismatches_are_rejected():
    theirs = hf_llama()
    state, config = theirs.state_dict(), config_from_llama(theirs.config)
    with pytest.raises(ValueError, match="expects"):
        GPTModel.from_llama_state_dict(state, get_gpt_config("llama-tiny", vocab_size=300))
    with pytest.raises(ValueError, match="incomplete"):
        GPTModel.from_llama_state_dict(state, config_from_llama(theirs.config, n_layer=4))
    with pytest.raises(ValueError, match="qk_norm do not match"):
        GPTModel.from_llama_state_dict(state, config_from_llama(theirs.config, qk_norm=True))
    with pytest.raises(ValueError, match="Llama uses RoPE, RMSNorm and SwiGLU"):
        GPTModel.from_llama_state_dict(state, get_gpt_config("tiny"))
    with pytest.raises(ValueError, match="GPT-2 has none of pos='rope'"):
        GPTModel.from_gpt2_state_dict({}, config)
    with pytest.raises(ValueError, match="GPT-2 has none of pos='rope'"):
        GPTModel(config).to_gpt2_state_dict()
    with pytest.raises(ValueError, match="llama3 RoPE scaling needs factor, low_freq_factor"):
        config_from_llama({**to_llama_config(config), "rope_scaling": {"rope_type": "llama3"}})
    with pytest.raises(ValueError, match="RoPE scaling 'yarn' is not supported"):
        config_from_llama({**to_llama_config(config), "rope_scaling": {"rope_type": "yarn"}})
    wide = config_from_llama({**to_llama_config(config), "head_dim": 2 * config.head_dim})
    assert (wide.head_size, wide.head_dim) == (2 * config.head_dim,) * 2  # Qwen3's own width
    with pytest.raises(ValueError, match="model_type 'gpt2'"):
        config_from_llama({"model_type": "gpt2"})
