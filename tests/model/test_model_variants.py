"""Every combination of the modern options, as whole models: shapes, causality, KV cache,
sampling, configs and checkpoints; and GPT-2 unchanged with the defaults.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_model, safe_open, save_model
from slm_model import PRESETS, GPTConfig, GPTModel, generate, get_gpt_config, stream

VOCAB, BLOCK = 61, 12
# pos x norm x mlp x (MHA, GQA, MQA) x qk_norm: all 48 combinations.
VARIANTS = [
    dict(pos=pos, norm=norm, mlp=mlp, n_kv_head=kv, qk_norm=qk)
    for pos, norm, mlp, kv, qk in itertools.product(
        ("learned", "rope"),
        ("layernorm", "rmsnorm"),
        ("gelu", "swiglu"),
        (None, 2, 1),
        (False, True),
    )
]


def variant_id(options: dict) -> str:
    kv = {None: "mha", 2: "gqa", 1: "mqa"}[options["n_kv_head"]]
    qk = "-qknorm" if options["qk_norm"] else ""
    return f"{options['pos']}-{options['norm']}-{options['mlp']}-{kv}{qk}"


def build(seed: int = 0, **options) -> GPTModel:
    torch.manual_seed(seed)
    config = GPTConfig(
        block_size=BLOCK, vocab_size=VOCAB, n_layer=2, n_head=4, n_embd=16, **options
    )
    model = GPTModel(config).eval()
    with torch.no_grad():  # norms start at 1 and biases at 0: perturb them so they matter
        for parameter in model.parameters():
            if parameter.dim() == 1:
                parameter.add_(torch.randn_like(parameter) * 0.1)
    return model


def naive_greedy(model: GPTModel, idx: torch.Tensor, steps: int) -> torch.Tensor:
    """The book's generate_text_simple: rerun the last block_size tokens every step."""
    for _ in range(steps):
        with torch.no_grad():
            logits = model(idx[:, -model.config.block_size :])
        idx = torch.cat([idx, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return idx


@pytest.mark.parametrize("options", VARIANTS, ids=variant_id)
def test_shapes_causality_and_cache(options):
    model = build(**options)
    idx = torch.randint(0, VOCAB, (2, BLOCK), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(idx)
        assert logits.shape == (2, BLOCK, VOCAB)
        _, loss = model(idx[:, :-1], idx[:, 1:])
        assert abs(loss.item() - math.log(VOCAB)) < 1.0
        # Changing the future leaves the past alone.
        for t in (0, 6):
            changed = idx.clone()
            changed[:, t + 1 :] = (changed[:, t + 1 :] + 1) % VOCAB
            torch.testing.assert_close(model(changed)[:, : t + 1], logits[:, : t + 1])
        # The cached path, fed in pieces, gives the same logits.
        cache = model.new_kv_cache(batch_size=2)
        assert cache.keys[0].shape == (2, model.config.kv_heads, BLOCK, 4)
        pieces = [
            model.lm_head(model.hidden_states(idx[:, a:b], cache))
            for a, b in [(0, 5), (5, 6), (6, 12)]
        ]
        torch.testing.assert_close(torch.cat(pieces, dim=1), logits, atol=1e-5, rtol=1e-5)
    # Greedy output with the cache equals without it and the naive loop, past the window.
    prompt = idx[:, :3]
    expected = naive_greedy(model, prompt, 2 * BLOCK)
    assert torch.equal(generate(model, prompt, 2 * BLOCK, temperature=0), expected)
    assert torch.equal(generate(model, prompt, 2 * BLOCK, temperature=0, use_cache=False), expected)


@pytest.mark.parametrize("kv", [None, 2])
def test_heads_wider_than_the_width_per_head(kv):
    """Qwen3's head_size: 4 heads of 8 features in a 16-wide model. Attention works in 32
    features and its output projection maps them back to 16; the cache holds 8 per head."""
    model = build(pos="rope", norm="rmsnorm", mlp="swiglu", n_kv_head=kv, qk_norm=True,
                  head_size=8)  # fmt: skip
    attention = model.blocks[0].attn
    assert attention.qkv.weight.shape == (32 + 2 * model.config.kv_heads * 8, 16)
    assert attention.out_proj.weight.shape == (16, 32)
    idx = torch.randint(0, VOCAB, (2, BLOCK), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(idx)
        cache = model.new_kv_cache(batch_size=2)
        assert cache.keys[0].shape == (2, model.config.kv_heads, BLOCK, 8)
        pieces = [
            model.lm_head(model.hidden_states(idx[:, a:b], cache)) for a, b in [(0, 5), (5, 12)]
        ]
        torch.testing.assert_close(torch.cat(pieces, dim=1), logits, atol=1e-5, rtol=1e-5)
        x = torch.randn(2, BLOCK, 16)
        torch.testing.assert_close(attention.forward_with_weights(x)[0], attention(x))
    expected = naive_greedy(model, idx[:, :3], 2 * BLOCK)
    assert torch.equal(generate(model, idx[:, :3], 2 * BLOCK, temperature=0), expected)


@pytest.mark.parametrize(
    "options",
    [VARIANTS[0], VARIANTS[-1], dict(pos="rope", n_kv_head=1)],
    ids=["gpt2", "all", "rope-mqa"],
)
def test_sampling_streams_what_generate_returns(options):
    model = build(**options)
    generator = torch.Generator().manual_seed(7)
    streamed = list(
        stream(model, [3, 1, 4], 2 * BLOCK, temperature=0.9, top_p=0.9, generator=generator)
    )
    generator = torch.Generator().manual_seed(7)
    generated = generate(
        model, [3, 1, 4], 2 * BLOCK, temperature=0.9, top_p=0.9, generator=generator
    )
    assert generated[0].tolist() == [3, 1, 4, *streamed]
    generator = torch.Generator().manual_seed(7)
    uncached = generate(
        model,
        [3, 1, 4],
        2 * BLOCK,
        temperature=0.9,
        top_p=0.9,
        generator=generator,
        use_cache=False,
    )
    assert torch.equal(generated, uncached)


def test_training_step_reaches_every_parameter():
    model = build(**VARIANTS[-1]).train()
    idx = torch.randint(0, VOCAB, (2, BLOCK))
    _, loss = model(idx[:, :-1], idx[:, 1:])
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


# ------------------------------------------------------ structure and budgets
def test_names_the_training_code_relies_on():
    model = GPTModel(get_gpt_config("llama-tiny", qk_norm=True))
    assert model.pos_emb is None
    linear = {name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    for suffix in ("attn.qkv", "attn.out_proj", "mlp.fc", "mlp.proj"):  # LoRA's targets
        assert f"blocks.0.{suffix}" in linear
    assert model.blocks[0].mlp.fc.out_features == 2 * model.config.mlp_hidden
    assert not any(name.endswith("bias") for name, _ in model.named_parameters())
    assert "rotary" not in " ".join(model.state_dict())  # the RoPE tables are not weights
    assert model.hidden_states(torch.zeros(1, 4, dtype=torch.long)).shape == (1, 4, 64)
    assert model.lm_head.weight is model.tok_emb.weight


@pytest.mark.parametrize(("modern", "classic"), [("llama-tiny", "tiny"), ("llama-small", "small")])
def test_modern_presets_have_the_classic_budgets(modern, classic):
    with torch.device("meta"):
        ours, theirs = GPTModel(get_gpt_config(modern)), GPTModel(get_gpt_config(classic))
    c = ours.config
    assert (c.pos, c.norm, c.mlp, c.bias) == ("rope", "rmsnorm", "swiglu", False)
    assert c.kv_heads < c.n_head
    body, classic_body = (m.num_parameters(exclude_embeddings=True) for m in (ours, theirs))
    assert abs(body - classic_body) / classic_body < 0.02  # GPT-2 also has biases
    d = c.n_embd
    assert body == c.n_layer * (12 * d * d + 2 * d) + d  # 12 d^2 per block, as GPT-2
    assert ours.num_parameters() == body + c.vocab_size * d  # no position table


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_qwen3_presets_are_llama_with_qk_norm(size):
    llama, qwen3 = get_gpt_config(f"llama-{size}"), get_gpt_config(f"qwen3-{size}")
    assert qwen3.qk_norm and not llama.qk_norm
    assert qwen3.to_dict() == {**llama.to_dict(), "qk_norm": True}


# -------------------------------------------------------------- GPT-2 intact
def gpt2_reference(model: GPTModel, idx: torch.Tensor) -> torch.Tensor:
    """GPT-2's forward pass as slm computed it before the modern options, op for op."""
    c = model.config
    x = model.tok_emb(idx) + model.pos_emb(torch.arange(idx.shape[1]))
    for block in model.blocks:
        h = F.layer_norm(x, (c.n_embd,), block.norm1.weight, block.norm1.bias)
        qkv = block.attn.qkv(h).view(*idx.shape, 3, c.n_head, c.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        context = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + block.attn.out_proj(context.transpose(1, 2).reshape(*idx.shape, c.n_embd))
        h = F.layer_norm(x, (c.n_embd,), block.norm2.weight, block.norm2.bias)
        x = x + block.mlp.proj(F.gelu(block.mlp.fc(h), approximate="tanh"))
    x = F.layer_norm(x, (c.n_embd,), model.final_norm.weight, model.final_norm.bias)
    return model.lm_head(x)


def test_gpt2_defaults_are_unchanged_bit_for_bit():
    torch.manual_seed(0)
    model = GPTModel(get_gpt_config("tiny")).eval()
    expected_names = ["tok_emb.weight", "pos_emb.weight"]
    for i in range(2):
        for layer in ("norm1", "attn.qkv", "attn.out_proj", "norm2", "mlp.fc", "mlp.proj"):
            expected_names += [f"blocks.{i}.{layer}.weight", f"blocks.{i}.{layer}.bias"]
    expected_names += ["final_norm.weight", "final_norm.bias", "lm_head.weight"]
    assert list(model.state_dict()) == expected_names
    idx = torch.randint(0, 512, (2, 64))
    with torch.no_grad():
        assert torch.equal(model(idx), gpt2_reference(model, idx))
    assert model.new_kv_cache().keys[0].shape == (1, 2, 64, 32)


# ------------------------------------------------------------------ configs
configs = st.builds(
    GPTConfig,
    block_size=st.integers(1, 64),
    vocab_size=st.integers(1, 1000),
    n_layer=st.integers(1, 4),
    n_head=st.just(4),
    n_embd=st.sampled_from([8, 16, 64]),
    dropout=st.sampled_from([0.0, 0.1]),
    bias=st.booleans(),
    tie_weights=st.booleans(),
    pos=st.sampled_from(["learned", "rope"]),
    norm=st.sampled_from(["layernorm", "rmsnorm"]),
    mlp=st.sampled_from(["gelu", "swiglu"]),
    n_kv_head=st.sampled_from([None, 1, 2, 4]),
    qk_norm=st.booleans(),
    rope_theta=st.sampled_from([10000.0, 500000.0, 100]),
    intermediate_size=st.none() | st.integers(1, 300),
    norm_eps=st.sampled_from([1e-5, 1e-6]),
    head_size=st.sampled_from([None, 2, 6, 32]),
)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(config=configs)
def test_config_round_trips_through_json(config):
    assert GPTConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_old_config_dicts_still_load():
    old = dict(
        block_size=64,
        vocab_size=512,
        n_layer=2,
        n_head=2,
        n_embd=64,
        dropout=0.0,
        bias=True,
        tie_weights=True,
    )
    config = GPTConfig.from_dict(old)
    assert config == get_gpt_config("tiny")
    assert (config.pos, config.norm, config.mlp, config.kv_heads, config.qk_norm) == (
        "learned", "layernorm", "gelu", 2, False
    )  # fmt: skip
    assert config.mlp_hidden == 256


def test_every_preset_builds_on_the_meta_device():
    for name in PRESETS:
        with torch.device("meta"):
            GPTModel(get_gpt_config(name))


def test_checkpoint_round_trip_keeps_config_and_logits(tmp_path):
    model = build(**dict(VARIANTS[-1], tie_weights=True, rope_theta=123.0, norm_eps=1e-6))
    path = str(tmp_path / "model.safetensors")
    save_model(model, path, metadata={"config": json.dumps(model.config.to_dict())})
    with safe_open(path, "pt") as file:
        config = GPTConfig.from_dict(json.loads(file.metadata()["config"]))
    assert config == model.config
    loaded = GPTModel(config).eval()
    load_model(loaded, path)
    idx = torch.randint(0, VOCAB, (2, BLOCK))
    with torch.no_grad():
        assert torch.equal(loaded(idx), model(idx))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"pos": "alibi"}, "pos must be one of learned, rope"),
        ({"norm": "batchnorm"}, "norm must be one of"),
        ({"mlp": "relu"}, "mlp must be one of"),
        ({"n_kv_head": 3, "n_head": 4}, r"must divide n_head=4.*\[1, 2, 4\]"),
        ({"n_kv_head": 0}, "n_kv_head must be a positive integer"),
        ({"pos": "rope", "n_embd": 6, "n_head": 2}, "must be even"),
        ({"qk_norm": "yes"}, "qk_norm must be true or false"),
        ({"rope_theta": 0}, "rope_theta must be a positive number"),
        ({"norm_eps": -1.0}, "norm_eps must be a positive number"),
        ({"intermediate_size": 2.5}, "intermediate_size must be a positive integer"),
        ({"head_size": 0}, "head_size must be a positive integer"),
        ({"pos": "rope", "head_size": 5}, r"a head's width \(head_size, or n_embd / n_head\)"),
    ],
)
def test_bad_modern_configs_rejected(overrides, message):
    with pytest.raises(ValueError, match=message):
        get_gpt_config("tiny", **overrides)


def test_config_replace_keeps_validation():
    config = get_gpt_config("llama-tiny")
    assert dataclasses.replace(config, n_kv_head=None).kv_heads == config.n_head
    with pytest.raises(ValueError, match="must divide"):
        dataclasses.replace(config, n_kv_head=3)
