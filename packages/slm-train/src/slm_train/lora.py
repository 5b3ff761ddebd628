"""LoRA: fine-tune a few million parameters instead of all of them (Hu et al., 2021).

A pre-trained weight matrix W stays frozen; next to it we learn a low-rank
update B @ A (A: rank x in, B: out x rank), so the layer computes

    x W^T + (alpha / rank) * x A^T B^T

B starts at zero, so at the start of fine-tuning the model is exactly the
pre-trained one. With rank 8 on a 768 x 768 matrix that is 12,288 trainable
numbers instead of 589,824. `merge_lora` folds B @ A back into W afterwards,
leaving a plain model with no extra cost at inference.

`train_rows` lets a few rows of a frozen matrix learn as well: chat tuning
with LoRA needs it for the chat markers' embedding and output rows, which no
adapter on the transformer blocks can reach (left frozen, a new
`<|im_end|>` keeps its initial row and the model never learns to stop).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

# The linear layers of slm_model's transformer blocks.
DEFAULT_TARGETS = ("attn.qkv", "attn.out_proj", "mlp.fc", "mlp.proj")


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float | None = None) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be at least 1, got {rank}")
        self.base = base
        self.base.weight.requires_grad_(False)
        if self.base.bias is not None:
            self.base.bias.requires_grad_(False)
        self.rank = rank
        self.scale = (alpha if alpha is not None else rank) / rank
        device, dtype = base.weight.device, base.weight.dtype
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, device=device, dtype=dtype))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, device=device, dtype=dtype))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))  # as nn.Linear initialises weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_a.T @ self.lora_b.T) * self.scale

    def merged(self) -> nn.Linear:
        """A plain Linear computing the same function."""
        with torch.no_grad():
            self.base.weight += (self.lora_b @ self.lora_a) * self.scale
        self.base.weight.requires_grad_(True)
        if self.base.bias is not None:
            self.base.bias.requires_grad_(True)
        return self.base


def apply_lora(
    model: nn.Module, rank: int, alpha: float | None = None, targets=DEFAULT_TARGETS
) -> int:
    """Freeze `model` and wrap its target linear layers with LoRA; returns how many were wrapped."""
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    wrapped = 0
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Linear) and any(full.endswith(t) for t in targets):
                setattr(module, child_name, LoRALinear(child, rank, alpha))
                wrapped += 1
    if wrapped == 0:
        raise ValueError(f"no linear layer matched the LoRA targets {targets}")
    return wrapped


def train_rows(weight: nn.Parameter, rows: Sequence[int]) -> None:
    """Let `rows` of a frozen weight learn, and no other row: its gradient is masked.

    AdamW leaves a row whose gradient is always zero exactly as it was (both
    moments stay zero, so the update is 0 / eps), but its decoupled weight
    decay would still shrink every row; `optim.adamw_groups` therefore never
    decays such a weight (`trained_rows` names them).
    """
    mask = torch.zeros(weight.shape[0], 1, dtype=weight.dtype, device=weight.device)
    mask[list(rows)] = 1
    weight.requires_grad_(True)
    weight.register_hook(lambda grad: grad * mask)
    weight.trained_rows = tuple(rows)


def trained_rows(weight: torch.Tensor) -> tuple[int, ...] | None:
    """The rows `train_rows` lets learn, or None for an ordinary weight."""
    return getattr(weight, "trained_rows", None)


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every LoRALinear by its merged Linear (in place); returns the model."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                setattr(module, child_name, child.merged())
    return model


def lora_scale(model: nn.Module) -> float | None:
    """The scale of the model's LoRA adapters, or None if it has none."""
    return next((m.scale for m in model.modules() if isinstance(m, LoRALinear)), None)


def merge_lora_weights(weights: dict[str, torch.Tensor], scale: float) -> dict[str, torch.Tensor]:
    """A state dict with LoRA layers (X.base.weight, X.lora_a, X.lora_b) folded into X.weight.

    The same arithmetic as `LoRALinear.merged`, so the result is bit for bit
    what merging the live model gives.
    """
    merged = {}
    for name, tensor in weights.items():
        if name.endswith((".lora_a", ".lora_b")):
            continue
        if name.endswith(".base.weight"):
            prefix = name.removesuffix(".base.weight")
            update = (weights[f"{prefix}.lora_b"] @ weights[f"{prefix}.lora_a"]) * scale
            merged[f"{prefix}.weight"] = tensor + update
        elif name.endswith(".base.bias"):
            merged[name.removesuffix(".base.bias") + ".bias"] = tensor
        else:
            merged[name] = tensor
    return merged
