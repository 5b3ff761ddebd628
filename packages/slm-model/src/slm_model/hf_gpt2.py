"""Converting between our parameter names and Hugging Face's GPT-2 names.

Two differences matter. Names: `transformer.h.0.attn.c_attn` is our
`blocks.0.attn.qkv`, and so on (table below). Layout: OpenAI's GPT-2 code used
a "Conv1D" layer that stores a linear layer's weight as (in, out), where
`nn.Linear` stores (out, in), so those weights are transposed. The fused QKV
projections agree on order (all query heads, then keys, then values), so no
reshuffling is needed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from .config import GPTConfig
from .exportable import check_exportable

# (ours, theirs, transposed?) for each block; {i} is the layer index.
_BLOCK_NAMES = [
    ("norm1.weight", "ln_1.weight", False),
    ("norm1.bias", "ln_1.bias", False),
    ("attn.qkv.weight", "attn.c_attn.weight", True),
    ("attn.qkv.bias", "attn.c_attn.bias", False),
    ("attn.out_proj.weight", "attn.c_proj.weight", True),
    ("attn.out_proj.bias", "attn.c_proj.bias", False),
    ("norm2.weight", "ln_2.weight", False),
    ("norm2.bias", "ln_2.bias", False),
    ("mlp.fc.weight", "mlp.c_fc.weight", True),
    ("mlp.fc.bias", "mlp.c_fc.bias", False),
    ("mlp.proj.weight", "mlp.c_proj.weight", True),
    ("mlp.proj.bias", "mlp.c_proj.bias", False),
]
_TOP_NAMES = [
    ("tok_emb.weight", "wte.weight"),
    ("pos_emb.weight", "wpe.weight"),
    ("final_norm.weight", "ln_f.weight"),
    ("final_norm.bias", "ln_f.bias"),
]
# The published GPT-2 models (small, medium, large, xl): width -> attention heads, all 64 wide.
GPT2_HEADS = {768: 12, 1024: 16, 1280: 20, 1600: 25}


def _name_pairs(config: GPTConfig) -> list[tuple[str, str, bool]]:
    pairs = [(ours, theirs, False) for ours, theirs in _TOP_NAMES]
    for i in range(config.n_layer):
        pairs += [(f"blocks.{i}.{ours}", f"h.{i}.{theirs}", t) for ours, theirs, t in _BLOCK_NAMES]
    return pairs


def _prefix(state_dict: Mapping[str, torch.Tensor]) -> str:
    """`GPT2LMHeadModel` nests everything under "transformer."; `GPT2Model` files do not."""
    return "transformer." if any(k.startswith("transformer.") for k in state_dict) else ""


def config_from_gpt2_state_dict(
    state_dict: Mapping[str, torch.Tensor], n_head: int | None = None
) -> GPTConfig:
    """The shape of a GPT-2 from its weights; the head count is not in them.

    For the published widths it is known (`GPT2_HEADS`); for any other width,
    pass `n_head` (transformers saves it as `n_head` in the config.json beside
    the weights). Guessing would split the width into the wrong heads and give
    wrong logits without any error.
    """
    prefix = _prefix(state_dict)
    try:
        vocab_size, n_embd = state_dict[f"{prefix}wte.weight"].shape
        block_size = state_dict[f"{prefix}wpe.weight"].shape[0]
    except KeyError as error:
        raise ValueError(f"not a GPT-2 state dict: it has no {error.args[0]!r}") from None
    layers = {
        int(m.group(1)) for k in state_dict if (m := re.match(rf"{re.escape(prefix)}h\.(\d+)\.", k))
    }
    head = state_dict.get("lm_head.weight")
    tied = head is None or torch.equal(head, state_dict[f"{prefix}wte.weight"])
    n_head = n_head or GPT2_HEADS.get(n_embd)
    if n_head is None:
        raise ValueError(
            f"GPT-2 weights of width {n_embd} do not say how many attention heads they have "
            f"(the published GPT-2 widths are {', '.join(map(str, GPT2_HEADS))}); give n_head, "
            "e.g. from the config.json that transformers saved beside them"
        )
    return GPTConfig(
        block_size=block_size,
        vocab_size=vocab_size,
        n_layer=len(layers),
        n_head=n_head,
        n_embd=n_embd,
        bias=True,
        tie_weights=tied,
    )


def _check_architecture(config: GPTConfig) -> None:
    check_exportable(config, "GPT-2")
    modern = {
        name: getattr(config, name)
        for name, gpt2 in [("pos", "learned"), ("norm", "layernorm"), ("mlp", "gelu")]
        if getattr(config, name) != gpt2
    }
    if config.kv_heads != config.n_head:
        modern["n_kv_head"] = config.n_kv_head
    if config.qk_norm:
        modern["qk_norm"] = True
    if config.mlp_hidden != 4 * config.n_embd:
        modern["intermediate_size"] = config.intermediate_size
    if modern:
        settings = ", ".join(f"{k}={v!r}" for k, v in modern.items())
        raise ValueError(f"GPT-2 has none of {settings}; use a GPT-2 preset's defaults")


def from_gpt2_state_dict(
    state_dict: Mapping[str, torch.Tensor], config: GPTConfig
) -> dict[str, torch.Tensor]:
    """Our state dict for `GPTModel(config)` from a Hugging Face GPT-2 one."""
    _check_architecture(config)
    if not config.bias:
        raise ValueError("GPT-2 weights include biases; use a config with bias=True")
    prefix = _prefix(state_dict)
    ours: dict[str, torch.Tensor] = {}
    for our_name, their_name, transposed in _name_pairs(config):
        key = prefix + their_name
        if key not in state_dict:
            raise ValueError(
                f"the GPT-2 state dict has no {key!r}: it is incomplete or for fewer layers"
            )
        tensor = state_dict[key]
        ours[our_name] = tensor.t().contiguous() if transposed else tensor
    head = state_dict.get("lm_head.weight")
    if config.tie_weights or head is None:
        ours["lm_head.weight"] = ours["tok_emb.weight"]
    else:
        ours["lm_head.weight"] = head
    return ours


def to_gpt2_state_dict(
    state_dict: Mapping[str, torch.Tensor], config: GPTConfig
) -> dict[str, torch.Tensor]:
    """`GPT2LMHeadModel`'s state dict from ours."""
    _check_architecture(config)
    if not config.bias:
        raise ValueError("GPT-2 has biases everywhere; a bias=False model cannot be exported to it")
    theirs: dict[str, torch.Tensor] = {}
    for our_name, their_name, transposed in _name_pairs(config):
        tensor = state_dict[our_name].detach()
        theirs["transformer." + their_name] = (
            (tensor.t() if transposed else tensor).contiguous().clone()
        )
    theirs["lm_head.weight"] = state_dict["lm_head.weight"].detach().clone()
    return theirs
