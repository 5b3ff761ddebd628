"""Which of a model's settings other libraries can run, and the weights they expect.

slm exports to transformers (GPT-2, Llama, Qwen3) and llama.cpp (GGUF). Most of
nanochat's pieces (config.py) exist in neither, so a model that uses them
cannot be written as any of their architectures: exporting it would give a
model that computes something else. The export refuses such a model in one
line naming the pieces, and the fix is to train without them.

Two of nanochat's pieces do export: untied embeddings (every architecture has
an untied output layer) and norms without parameters, which compute exactly
what a norm with a scale of ones (and a shift of zeros) computes, so the
export writes those (`with_norm_weights`).
"""

from __future__ import annotations

import torch
from torch import nn

from .config import GPTConfig

# (GPTConfig field, what an export error calls it) for the pieces no target has.
_UNEXPORTABLE = (
    ("value_embeds", "value embeddings"),
    ("lambdas", "residual and x0 lambdas"),
    ("smear", "a smear gate"),
    ("logit_softcap", "a logit soft-cap (transformers has one only in Gemma 2, unlike slm)"),
    ("backout", "a back-out of the middle layer"),
)


def unexportable_pieces(config: GPTConfig) -> list[str]:
    """What `config` switches on that no transformers or llama.cpp architecture has."""
    return [name for _, name in _switched_on(config)]


def check_exportable(config: GPTConfig, target: str) -> None:
    """Raise ValueError naming the pieces `target` (say "transformers") cannot run."""
    pieces = _switched_on(config)
    if pieces:
        names = " and ".join(name for _, name in pieces)
        fields = ", ".join(f"model.{field}" for field, _ in pieces)
        raise ValueError(
            f"exports to {target} need an architecture it has; this run uses {names}, "
            f"which no {target} architecture has. Train without {fields} to export"
        )


def _switched_on(config: GPTConfig) -> list[tuple[str, str]]:
    return [
        (field, name)
        for field, name in _UNEXPORTABLE
        if getattr(config, field) not in (False, None)
    ]


def with_norm_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """`model.state_dict()`, with the implicit ones (and zeros) of parameter-free norms added."""
    weights = dict(model.state_dict())
    for name, module in model.named_modules():
        if isinstance(module, (nn.LayerNorm, nn.RMSNorm)) and module.weight is None:
            like = next(iter(weights.values()))
            ones = torch.ones(module.normalized_shape, dtype=like.dtype, device=like.device)
            weights[f"{name}.weight"] = ones
            if isinstance(module, nn.LayerNorm) and model.config.bias:
                weights[f"{name}.bias"] = torch.zeros_like(ones)
    return weights
