"""Converting between our parameters and Hugging Face's Llama (and Qwen3) names.

A Llama-style `GPTModel` (the `llama-*` presets, or any config with
pos="rope", norm="rmsnorm", mlp="swiglu") is the same network as transformers'
`LlamaForCausalLM`; only the bookkeeping differs:

- Names: `model.layers.0.self_attn.o_proj` is our `blocks.0.attn.out_proj`, and
  so on (table below).
- Fused layers: we compute queries, keys and values with one matrix (`qkv`),
  and SwiGLU's gate and up projections with another (`fc`); Llama keeps
  separate `q_proj`, `k_proj`, `v_proj` and `gate_proj`, `up_proj`. Fusing is
  concatenating the weights along the output dimension, in that order.
- RoPE layout: Hugging Face's Llama rotates feature i with feature
  i + head_dim/2 ("rotate half"), as we do, so query and key weights need no
  permutation. (Meta's original checkpoints pair neighbouring features;
  Hugging Face's conversion script permuted them once, on the way in.)

Qwen2 is Llama with biases on q_proj, k_proj and v_proj only (`qkv_bias=True`),
and Qwen3 is Llama plus QK-norm (`q_norm`, `k_norm`), which maps to `qk_norm=True`.
Llama 3.1/3.2's `rope_scaling` {"rope_type": "llama3", ...} is kept as the
config's `rope_scaling`, and a `head_dim` apart from hidden_size / heads (Qwen3's)
as `head_size`. Anything slm's model cannot compute (another rope scaling,
sliding-window attention) is refused in one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .config import GPTConfig
from .exportable import check_exportable
from .rope import LLAMA3_KEYS, check_rope_scaling

# (ours, theirs) for each block's unfused tensors; {i} is the layer index.
_BLOCK_NAMES = [
    ("norm1.weight", "input_layernorm.weight"),
    ("attn.out_proj.weight", "self_attn.o_proj.weight"),
    ("norm2.weight", "post_attention_layernorm.weight"),
    ("mlp.proj.weight", "mlp.down_proj.weight"),
]
_BIAS_NAMES = [
    ("attn.out_proj.bias", "self_attn.o_proj.bias"),
    ("mlp.proj.bias", "mlp.down_proj.bias"),
]
_QK_NORM_NAMES = [
    ("attn.q_norm.weight", "self_attn.q_norm.weight"),
    ("attn.k_norm.weight", "self_attn.k_norm.weight"),
]
# (ours, [theirs, ...]): our fused tensor is their tensors concatenated along dim 0.
_FUSED_NAMES = [
    ("attn.qkv", ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"]),
    ("mlp.fc", ["mlp.gate_proj", "mlp.up_proj"]),
]
_TOP_NAMES = [("tok_emb.weight", "embed_tokens.weight"), ("final_norm.weight", "norm.weight")]
_MODEL_TYPES = ("llama", "qwen2", "qwen3")


def _check_architecture(config: GPTConfig) -> None:
    check_exportable(config, "Llama")
    if (config.pos, config.norm, config.mlp) != ("rope", "rmsnorm", "swiglu"):
        raise ValueError(
            "Llama uses RoPE, RMSNorm and SwiGLU; this config has "
            f"pos={config.pos!r}, norm={config.norm!r}, mlp={config.mlp!r}. "
            "Start from a llama-* preset"
        )


def _tensor_pairs(config: GPTConfig) -> list[tuple[str, str]]:
    """(ours, theirs) for every tensor that maps one to one, theirs without the prefix."""
    per_block = list(_BLOCK_NAMES)
    if config.bias:
        per_block += _BIAS_NAMES
    if config.qk_norm:
        per_block += _QK_NORM_NAMES
    pairs = list(_TOP_NAMES)
    for i in range(config.n_layer):
        pairs += [(f"blocks.{i}.{ours}", f"layers.{i}.{theirs}") for ours, theirs in per_block]
    return pairs


def _fused_pairs(config: GPTConfig) -> list[tuple[str, list[str]]]:
    biased = {"attn.qkv": config.attention_bias, "mlp.fc": config.bias}
    return [
        (f"blocks.{i}.{ours}.{kind}", [f"layers.{i}.{name}.{kind}" for name in theirs])
        for i in range(config.n_layer)
        for ours, theirs in _FUSED_NAMES
        for kind in (["weight", "bias"] if biased[ours] else ["weight"])
    ]


def _prefix(state_dict: Mapping[str, torch.Tensor]) -> str:
    """`LlamaForCausalLM` nests the body under "model."; `LlamaModel` files do not."""
    return "model." if any(k.startswith("model.") for k in state_dict) else ""


def from_llama_state_dict(
    state_dict: Mapping[str, torch.Tensor], config: GPTConfig
) -> dict[str, torch.Tensor]:
    """Our state dict for `GPTModel(config)` from a Hugging Face Llama (or Qwen3) one."""
    _check_architecture(config)
    prefix = _prefix(state_dict)

    def theirs(name: str) -> torch.Tensor:
        if prefix + name not in state_dict:
            raise ValueError(
                f"the Llama state dict has no {prefix + name!r}: it is incomplete, for fewer "
                "layers, or the config's bias / qk_norm do not match the weights"
            )
        return state_dict[prefix + name]

    ours = {our_name: theirs(their_name) for our_name, their_name in _tensor_pairs(config)}
    for our_name, their_names in _fused_pairs(config):
        ours[our_name] = torch.cat([theirs(name) for name in their_names], dim=0)
    head = state_dict.get("lm_head.weight")
    if config.tie_weights or head is None:
        ours["lm_head.weight"] = ours["tok_emb.weight"]
    else:
        ours["lm_head.weight"] = head
    return ours


def to_llama_state_dict(
    state_dict: Mapping[str, torch.Tensor], config: GPTConfig
) -> dict[str, torch.Tensor]:
    """`LlamaForCausalLM`'s state dict from ours (fused layers split apart)."""
    _check_architecture(config)
    theirs: dict[str, torch.Tensor] = {}
    for our_name, their_name in _tensor_pairs(config):
        theirs["model." + their_name] = state_dict[our_name].detach().clone()
    kv_width = config.kv_heads * config.head_dim
    widths = {
        "attn.qkv": [config.attention_width, kv_width, kv_width],
        "mlp.fc": [config.mlp_hidden, config.mlp_hidden],
    }
    for our_name, their_names in _fused_pairs(config):
        layer_name = our_name.split(".", 2)[2].rsplit(".", 1)[0]  # "attn.qkv" or "mlp.fc"
        parts = state_dict[our_name].detach().split(widths[layer_name], dim=0)
        for name, part in zip(their_names, parts, strict=True):
            theirs["model." + name] = part.clone()
    theirs["lm_head.weight"] = state_dict["lm_head.weight"].detach().clone()
    return theirs


# ------------------------------------------------------------------ configs
def _reader(hf_config: Any):
    """Read a field from a transformers config object or a config.json dict alike."""
    if isinstance(hf_config, Mapping):
        return lambda key, default=None: hf_config.get(key, default)
    return lambda key, default=None: getattr(hf_config, key, default)


def _rope(get) -> tuple[float, dict | None]:
    """RoPE's base and scaling, from transformers 5's `rope_parameters` or older
    `rope_theta` and `rope_scaling`."""
    parameters = dict(get("rope_parameters") or get("rope_scaling") or {})
    theta = float(parameters.pop("rope_theta", get("rope_theta", 10000.0)))
    rope_type = parameters.get("rope_type", parameters.get("type", "default"))
    if rope_type == "default":
        return theta, None
    check_rope_scaling(parameters)
    return theta, {"rope_type": "llama3", **{key: parameters[key] for key in LLAMA3_KEYS}}


def _check_attention(get, model_type: str) -> None:
    """Refuse what slm's attention does not compute: sliding windows."""
    layer_types = set(get("layer_types") or ["full_attention"])
    if get("use_sliding_window", False) or layer_types != {"full_attention"}:
        raise ValueError(
            f"this {model_type} uses sliding-window attention (use_sliding_window / "
            "layer_types); slm implements full causal attention only"
        )


def _biases(get, model_type: str) -> tuple[bool, bool | None]:
    """(bias, qkv_bias): Qwen2 has biases on q, k and v only; Llama may have them throughout."""
    if model_type == "qwen2":
        return False, True
    if bool(get("attention_bias", False)) != bool(get("mlp_bias", False)):
        raise ValueError("slm has one bias switch; attention_bias and mlp_bias must agree")
    return bool(get("attention_bias", False)), None


def config_from_llama(hf_config: Any, **overrides: Any) -> GPTConfig:
    """A GPTConfig from a transformers `LlamaConfig` / `Qwen2Config` / `Qwen3Config`, or
    their config.json dict.

    `overrides` replace fields, e.g. `block_size=2048` for a model whose
    max_position_embeddings is larger than you need.
    """
    get = _reader(hf_config)
    model_type = get("model_type", "llama")
    if model_type not in _MODEL_TYPES:
        raise ValueError(f"model_type {model_type!r} is not supported; use one of {_MODEL_TYPES}")
    if get("hidden_act", "silu") != "silu":
        raise ValueError(f"Llama's SwiGLU uses silu, this config has {get('hidden_act')!r}")
    _check_attention(get, model_type)
    bias, qkv_bias = _biases(get, model_type)
    rope_theta, rope_scaling = _rope(get)
    heads, hidden = get("num_attention_heads"), get("hidden_size")
    head_dim = get("head_dim") or hidden // heads
    values = dict(
        block_size=get("max_position_embeddings"),
        vocab_size=get("vocab_size"),
        n_layer=get("num_hidden_layers"),
        n_head=heads,
        n_embd=get("hidden_size"),
        n_kv_head=get("num_key_value_heads") or heads,
        intermediate_size=get("intermediate_size"),
        rope_theta=rope_theta,
        rope_scaling=rope_scaling,
        norm_eps=float(get("rms_norm_eps", 1e-6)),
        bias=bias,
        qkv_bias=qkv_bias,
        tie_weights=bool(get("tie_word_embeddings", False)),
        qk_norm=model_type == "qwen3",
        pos="rope",
        norm="rmsnorm",
        mlp="swiglu",
        head_size=None if head_dim * heads == hidden else head_dim,
    )
    return GPTConfig.from_dict({**values, **overrides})


def _model_type(config: GPTConfig) -> str:
    """Which transformers family holds this config: llama, qwen2 (biases on q, k, v only)
    or qwen3 (QK-norm)."""
    if config.attention_bias == config.bias:
        if config.qk_norm and config.bias:
            raise ValueError("Qwen3 (Llama with QK-norm) has no biases; use bias=False")
        return "qwen3" if config.qk_norm else "llama"
    if config.attention_bias and not config.qk_norm:
        return "qwen2"
    raise ValueError(
        "transformers has no Llama-family model with these biases: use qkv_bias=None, or "
        "bias=False with qkv_bias=True (Qwen2, without qk_norm)"
    )


def to_llama_config(config: GPTConfig) -> dict[str, Any]:
    """Keyword arguments for transformers' `LlamaConfig` (`Qwen2Config` with biases on
    q, k and v only, `Qwen3Config` when qk_norm).

    `AutoModelForCausalLM.from_config(AutoConfig.for_model(**to_llama_config(config)))`
    builds the model whose state dict `to_llama_state_dict` fills; written to
    JSON, the dict is a config.json that `config_from_llama` reads back.
    """
    _check_architecture(config)
    model_type = _model_type(config)
    values = dict(
        model_type=model_type,
        vocab_size=config.vocab_size,
        hidden_size=config.n_embd,
        intermediate_size=config.mlp_hidden,
        num_hidden_layers=config.n_layer,
        num_attention_heads=config.n_head,
        num_key_value_heads=config.kv_heads,
        head_dim=config.head_dim,
        hidden_act="silu",
        max_position_embeddings=config.block_size,
        rms_norm_eps=config.norm_eps,
        rope_theta=float(config.rope_theta),
        tie_word_embeddings=config.tie_weights,
        attention_dropout=config.dropout,
    )
    if model_type != "qwen2":  # Qwen2's biases are fixed by its architecture
        values.update(attention_bias=config.bias, mlp_bias=config.bias)
    if config.rope_scaling is not None:
        values["rope_scaling"] = dict(config.rope_scaling)
    return values
