"""Parity with Hugging Face transformers' GPT2LMHeadModel, in both directions."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file
from slm_model import GPTModel, generate, get_gpt_config
from transformers import GPT2Config, GPT2LMHeadModel


def hf_model(seed: int = 0, **overrides) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=300,
        n_positions=48,
        n_embd=64,
        n_layer=3,
        n_head=4,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        **overrides,
    )
    model = GPT2LMHeadModel(config).eval()
    # Random init leaves biases and LayerNorms at 0/1; perturb every weight so a
    # transposed or swapped tensor cannot go unnoticed.
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.02)
    return model


def tokens(batch: int = 2, length: int = 40, vocab: int = 300) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(1))


def test_logits_match_transformers():
    theirs = hf_model()
    # The weights do not hold the head count: a 64-wide model could have 1 head or 4.
    with pytest.raises(ValueError, match="do not say how many attention heads"):
        GPTModel.from_gpt2_state_dict(theirs.state_dict())
    inferred = GPTModel.from_gpt2_state_dict(theirs.state_dict(), n_head=4).eval()
    ours = GPTModel.from_gpt2_state_dict(
        theirs.state_dict(),
        get_gpt_config("tiny", vocab_size=300, block_size=48, n_layer=3, n_head=4),
    ).eval()
    assert inferred.config == ours.config
    idx = tokens()
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), theirs(idx).logits, atol=1e-4, rtol=0)
        torch.testing.assert_close(inferred(idx), theirs(idx).logits, atol=1e-4, rtol=0)


def test_published_gpt2_widths_know_their_heads():
    from slm_model.hf_gpt2 import config_from_gpt2_state_dict

    for width, heads in ((768, 12), (1024, 16), (1280, 20), (1600, 25)):
        state = {"wte.weight": torch.zeros(10, width), "wpe.weight": torch.zeros(8, width)}
        state["h.0.ln_1.weight"] = torch.zeros(width)
        assert config_from_gpt2_state_dict(state).n_head == heads


def test_loss_matches_transformers():
    theirs = hf_model()
    config = get_gpt_config("tiny", vocab_size=300, block_size=48, n_layer=3, n_head=4)
    ours = GPTModel.from_gpt2_state_dict(theirs.state_dict(), config).eval()
    idx = tokens()
    with torch.no_grad():
        # transformers shifts labels inside; we take targets already shifted.
        their_loss = theirs(idx, labels=idx).loss
        _, our_loss = ours(idx[:, :-1], idx[:, 1:])
    torch.testing.assert_close(our_loss, their_loss, atol=1e-5, rtol=0)


def test_export_to_transformers():
    torch.manual_seed(3)
    config = get_gpt_config("tiny", vocab_size=300, block_size=48, n_layer=3, n_head=4)
    ours = GPTModel(config).eval()
    theirs = hf_model(seed=9)  # different weights, same shapes
    missing, unexpected = theirs.load_state_dict(ours.to_gpt2_state_dict(), strict=False)
    assert not unexpected and all(".attn.bias" in k or ".masked_bias" in k for k in missing)
    idx = tokens()
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), theirs(idx).logits, atol=1e-4, rtol=0)


def test_round_trip_through_a_safetensors_file(tmp_path):
    theirs = hf_model()
    save_file(
        {k: v.contiguous() for k, v in theirs.state_dict().items() if "lm_head" not in k},
        tmp_path / "model.safetensors",
    )
    config = get_gpt_config("tiny", vocab_size=300, block_size=48, n_layer=3, n_head=4)
    ours = GPTModel.from_gpt2_state_dict(load_file(tmp_path / "model.safetensors"), config).eval()
    idx = tokens()
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), theirs(idx).logits, atol=1e-4, rtol=0)


def test_gpt2model_names_without_prefix():
    theirs = hf_model()
    bare = {
        k.removeprefix("transformer."): v
        for k, v in theirs.state_dict().items()
        if k != "lm_head.weight"
    }
    config = get_gpt_config("tiny", vocab_size=300, block_size=48, n_layer=3, n_head=4)
    ours = GPTModel.from_gpt2_state_dict(bare, config).eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(tokens()), theirs(tokens()).logits, atol=1e-4, rtol=0)


def test_greedy_generation_matches_transformers():
    theirs = hf_model()
    config = get_gpt_config("tiny", vocab_size=300, block_size=48, n_layer=3, n_head=4)
    ours = GPTModel.from_gpt2_state_dict(theirs.state_dict(), config).eval()
    prompt = tokens(batch=1, length=5)
    expected = theirs.generate(
        prompt,
        max_new_tokens=30,
        do_sample=False,
        pad_token_id=0,
        attention_mask=torch.ones_like(prompt),
    )
    assert torch.equal(generate(ours, prompt, 30, temperature=0), expected)
    assert torch.equal(generate(ours, prompt, 30, temperature=0, use_cache=False), expected)


def test_mismatched_config_and_incomplete_weights_are_rejected():
    state = hf_model().state_dict()
    with pytest.raises(ValueError, match="expects"):
        GPTModel.from_gpt2_state_dict(
            state, get_gpt_config("tiny", vocab_size=300, n_layer=3, n_head=4)
        )
    with pytest.raises(ValueError, match="incomplete"):
        GPTModel.from_gpt2_state_dict(
            state, get_gpt_config("tiny", vocab_size=300, block_size=48, n_layer=4, n_head=4)
        )
    with pytest.raises(ValueError, match="not a GPT-2 state dict"):
        GPTModel.from_gpt2_state_dict({"weight": torch.zeros(3)})
    with pytest.raises(ValueError, match="bias=True"):
        GPTModel.from_gpt2_state_dict(
            state,
            get_gpt_config("tiny", vocab_size=300, block_size=48, n_layer=3, n_head=4, bias=False),
        )
