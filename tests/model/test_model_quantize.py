"""Weight-only int8/int4 quantization through torchao (slm_model.quantize, issue 26).

The int8 reference is written out here, not taken from torchao: each row of each
Linear weight rounded to int8 steps of max|w| / 127.
"""

from __future__ import annotations

import copy
import importlib.util

import pytest
import torch
from slm_model import GPTConfig, GPTModel, generate, quantize
from slm_model.quantize import weight_bytes

pytest.importorskip("torchao")

# Rows of 128 (whole int4 groups of 128) and of 96 (groups of 32 only), tied head.
CONFIG = GPTConfig(
    vocab_size=384, block_size=64, n_layer=2, n_embd=128, n_head=4, n_kv_head=2,
    intermediate_size=96, bias=False, tie_weights=True, pos="rope", norm="rmsnorm",
    mlp="swiglu", qk_norm=True,
)  # fmt: skip
IDS = torch.tensor([[5, 17, 99, 3, 250, 42, 8, 8, 120, 7]])


@pytest.fixture(scope="module")
def model() -> GPTModel:
    torch.manual_seed(0)
    model = GPTModel(CONFIG).eval()
    with torch.no_grad():  # logits of a useful size, not init's near-zero ones
        model.lm_head.weight.mul_(20)
    return model


def test_int8_weights_are_each_rows_int8_rounding_by_hand(model):
    """torchao's int8 steps against rounding by hand: round(w / s), s = max|w| / 127 per row.

    torchao divides in bf16, whose 8-bit mantissa cannot hold w / s exactly once
    it passes 64 steps, so a weight near half a step may round the other way:
    every step agrees within one (a per-tensor or asymmetric scale would not),
    and most exactly (90 % measured, 80 % asked). The scales agree to bf16's
    precision.
    """
    quantized = quantize(copy.deepcopy(model), "int8")
    for name in ("blocks.0.attn.qkv", "blocks.1.mlp.proj", "lm_head"):
        weight = model.get_submodule(name).weight.detach().to(torch.bfloat16).float()
        steps = (weight / (weight.abs().amax(dim=1, keepdim=True) / 127)).round()
        theirs = quantized.get_submodule(name).weight
        ours = theirs.qdata.float()  # torchao's int8 steps
        assert (ours - steps).abs().max() <= 1
        assert (ours == steps).float().mean() > 0.8
        scale = weight.abs().amax(dim=1) / 127
        torch.testing.assert_close(theirs.scale.float().flatten(), scale, rtol=2**-7, atol=0)
        assert (theirs.dequantize().float() - weight).abs().max() > 0  # really rounded


@pytest.mark.parametrize("how, tolerance", [("int8", 0.02), ("int4", 0.15)])
def test_quantized_logits_stay_close_and_weights_shrink(model, how, tolerance):
    """Logits within `tolerance` of the fp32 model's largest logit.

    An int8 step is 1/127 of a row's largest weight, an int4 step 1/15 of a
    group's range: errors of about 0.4 % and 3 % a weight, which partly cancel
    over a dot product. The tolerances are a few times the measured gaps
    (0.005 and 0.05 of the largest logit).
    """
    quantized = quantize(copy.deepcopy(model), how)
    with torch.no_grad():
        exact, ours = model(IDS), quantized(IDS).float()
    assert (ours - exact).abs().max() < tolerance * exact.abs().max()
    assert (ours.argmax(-1) == exact.argmax(-1)).float().mean() >= 0.8
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    embedding = model.tok_emb.weight.numel()
    bits = 8 if how == "int8" else 4
    # The bf16 embedding stays beside the quantized head; int4 rows of 96 stay bf16.
    assert weight_bytes(quantized) < 2 * embedding + linear * (bits / 8 + 0.25) + 2 * 96 * 128 * 4


def test_tied_embedding_stays_bf16_and_only_the_head_is_quantized(model):
    quantized = quantize(copy.deepcopy(model), "int4")
    assert type(quantized.tok_emb.weight) is torch.nn.Parameter
    assert quantized.tok_emb.weight.dtype == torch.bfloat16
    assert type(quantized.lm_head.weight) not in (torch.nn.Parameter, torch.Tensor)
    assert type(quantized.blocks[0].attn.qkv.weight) not in (torch.nn.Parameter, torch.Tensor)
    # MLP's down projection reads 96-wide rows: not whole groups of 128 or 64, so groups of 32.
    assert type(quantized.blocks[0].mlp.proj.weight) not in (torch.nn.Parameter, torch.Tensor)


@pytest.mark.parametrize("how", ["int8", "int4"])
def test_greedy_generation_through_the_kv_cache_matches_without(model, how):
    quantized = quantize(copy.deepcopy(model), how)
    cached = generate(quantized, IDS, 12, temperature=0)
    uncached = generate(quantized, IDS, 12, temperature=0, use_cache=False)
    assert cached.shape == (1, IDS.shape[1] + 12)
    assert torch.equal(cached, uncached)


def test_none_leaves_the_model_alone(model):
    assert quantize(model, "none") is model and quantize(model, None) is model
    assert model.lm_head.weight is model.tok_emb.weight


def test_an_unknown_kind_is_one_clear_error(model):
    with pytest.raises(ValueError, match=r"quantize must be one of none, int8, int4, not 'int3'"):
        quantize(model, "int3")


def test_missing_torchao_names_the_install_command(model, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torchao" else real(name, *a)
    )
    with pytest.raises(ModuleNotFoundError, match="uv sync --extra quantize"):
        quantize(model, "int8")
