"""GPTModel and its configuration."""

from __future__ import annotations

import math

import pytest
import torch
from slm_model import PRESETS, GPTConfig, GPTModel, get_gpt_config


@pytest.fixture
def tiny() -> GPTModel:
    torch.manual_seed(0)
    return GPTModel(get_gpt_config("tiny")).eval()


def test_shapes_and_loss(tiny):
    idx = torch.randint(0, 512, (3, 10))
    logits = tiny(idx)
    assert logits.shape == (3, 10, 512)
    targets = torch.randint(0, 512, (3, 10))
    logits2, loss = tiny(idx, targets)
    torch.testing.assert_close(logits, logits2)
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, 512), targets.reshape(-1))
    torch.testing.assert_close(loss, expected)
    # An untrained model predicts roughly uniformly: loss on random targets near ln(vocab).
    assert abs(loss.item() - math.log(512)) < 0.5


def test_ignore_index(tiny):
    idx = torch.randint(0, 512, (2, 8))
    targets = idx.clone()
    targets[:, :5] = -100
    logits, loss = tiny(idx, targets)
    expected = torch.nn.functional.cross_entropy(
        logits[:, 5:].reshape(-1, 512), idx[:, 5:].reshape(-1)
    )
    torch.testing.assert_close(loss, expected)


def test_causality(tiny):
    idx = torch.randint(0, 512, (2, 16))
    logits = tiny(idx)
    for t in (0, 5, 14):
        changed = idx.clone()
        changed[:, t + 1 :] = torch.randint(0, 512, (2, 16 - t - 1))
        torch.testing.assert_close(tiny(changed)[:, : t + 1], logits[:, : t + 1])
        assert not torch.allclose(tiny(changed)[:, t + 1 :], logits[:, t + 1 :])


def test_deterministic_under_a_seed():
    def build_and_run():
        torch.manual_seed(123)
        model = GPTModel(get_gpt_config("tiny", dropout=0.1)).train()
        return model(torch.arange(20).view(2, 10))

    torch.testing.assert_close(build_and_run(), build_and_run(), rtol=0, atol=0)


def test_dropout_only_in_training(tiny):
    model = GPTModel(get_gpt_config("tiny", dropout=0.5))
    idx = torch.randint(0, 512, (2, 8))
    model.eval()
    torch.testing.assert_close(model(idx), model(idx))
    model.train()
    assert not torch.allclose(model(idx), model(idx))


@pytest.mark.parametrize(
    ("name", "total"),
    [
        # GPT-2 small with tied weights, as reported for the released model.
        ("gpt2", 124_439_808),
        ("gpt2-medium", 354_823_168),
    ],
)
def test_preset_parameter_counts(name, total):
    with torch.device("meta"):  # shapes only: no memory, no time
        model = GPTModel(get_gpt_config(name))
    assert model.num_parameters() == total
    config = model.config
    embeddings = (config.vocab_size + config.block_size) * config.n_embd
    assert model.num_parameters(exclude_embeddings=True) == total - embeddings


def test_parameter_count_formula():
    # Per block: QKV (3d^2 + 3d), out proj (d^2 + d), MLP (8d^2 + 5d), two LayerNorms (4d).
    for name in ("tiny", "small"):
        c = get_gpt_config(name)
        d = c.n_embd
        per_block = 12 * d * d + 13 * d
        expected = c.n_layer * per_block + (c.vocab_size + c.block_size) * d + 2 * d
        assert GPTModel(c).num_parameters() == expected


def test_tied_and_untied_weights():
    tied = GPTModel(get_gpt_config("tiny"))
    assert tied.lm_head.weight is tied.tok_emb.weight
    untied = GPTModel(get_gpt_config("tiny", tie_weights=False))
    assert untied.lm_head.weight is not untied.tok_emb.weight
    assert untied.num_parameters() == tied.num_parameters() + 512 * 64


def test_no_bias_option():
    model = GPTModel(get_gpt_config("tiny", bias=False))
    assert all(not name.endswith("bias") for name, _ in model.named_parameters())
    model(torch.zeros(1, 4, dtype=torch.long))


def test_gpt2_initialisation():
    torch.manual_seed(0)
    config = get_gpt_config("small")
    model = GPTModel(config)
    assert model.blocks[0].mlp.fc.weight.std().item() == pytest.approx(0.02, rel=0.05)
    residual = 0.02 / math.sqrt(2 * config.n_layer)
    assert model.blocks[0].attn.out_proj.weight.std().item() == pytest.approx(residual, rel=0.05)
    assert model.blocks[0].mlp.proj.weight.std().item() == pytest.approx(residual, rel=0.05)
    assert torch.all(model.blocks[0].attn.qkv.bias == 0)


def test_presets_exist_and_tiny_is_tiny():
    gpt2_family = {"tiny", "small", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"}
    modern = {"llama-tiny", "llama-small", "qwen3-tiny", "qwen3-small"}
    assert set(PRESETS) == gpt2_family | modern
    assert GPTModel(get_gpt_config("tiny")).num_parameters() < 1_000_000
    assert get_gpt_config("small", vocab_size=1000).vocab_size == 1000


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: get_gpt_config("gpt5"),
            ValueError,
            "unknown model preset 'gpt5'.*tiny, small, gpt2",
        ),
        (lambda: get_gpt_config("tiny", n_layers=3), ValueError, "unknown GPTConfig fields"),
        (lambda: get_gpt_config("tiny", n_embd=65), ValueError, "divisible by n_head"),
        (lambda: get_gpt_config("tiny", n_layer=0), ValueError, "positive integer"),
        (lambda: get_gpt_config("tiny", block_size=2.5), ValueError, "positive integer"),
        (lambda: get_gpt_config("tiny", dropout=1.0), ValueError, "dropout"),
        (
            lambda: GPTConfig(block_size=8, vocab_size=10, n_layer=1, n_head=1, n_embd=True),
            ValueError,
            "n_embd",
        ),
    ],
)
def test_bad_configs_rejected(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_bad_inputs(tiny):
    with pytest.raises(ValueError, match="block_size=64"):
        tiny(torch.zeros(1, 65, dtype=torch.long))
    with pytest.raises(ValueError, match="unsqueeze"):
        tiny(torch.zeros(8, dtype=torch.long))
