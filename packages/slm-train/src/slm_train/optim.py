"""The optimiser and its learning-rate schedule.

AdamW (Loshchilov & Hutter, 2019) decays weights separately from the
gradient step. As in GPT-2 and nanoGPT, only weight matrices are decayed:
biases, norm scales and embeddings are not, because shrinking them towards
zero does not regularise anything useful.

The schedule is nanoGPT's: a linear warm-up over `warmup_steps`, then a
cosine from the peak learning rate down to `final_lr` over the rest of the
budget. "The budget" is whichever of steps, tokens or time runs out first, so
a run limited to 8 minutes decays over those 8 minutes.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import ConfigError, LoopConfig


def make_optimizer(model: nn.Module, config: LoopConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices only: not on biases, norms or embeddings."""
    embeddings = {
        id(module.weight) for module in model.modules() if isinstance(module, nn.Embedding)
    }
    decay, no_decay = [], []
    for parameter in {id(p): p for p in model.parameters() if p.requires_grad}.values():
        matrix = parameter.dim() >= 2 and id(parameter) not in embeddings
        (decay if matrix else no_decay).append(parameter)
    if not decay and not no_decay:
        raise ConfigError("nothing to train: every parameter is frozen")
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups,
        lr=config.learning_rate,
        betas=(config.beta1, config.beta2),
        fused=device.type == "cuda",
    )


def learning_rate(config: LoopConfig, step: int, progress: float) -> float:
    """Linear warm-up over warmup_steps, then cosine decay from learning_rate to final_lr.

    `progress` is the fraction of the budget spent (0..1) before this step.
    """
    peak, final = config.learning_rate, config.final_lr
    if step < config.warmup_steps:
        return peak * (step + 1) / config.warmup_steps
    if config.max_steps is not None and progress >= 1:
        return final
    # Decay over the part of the budget left after warm-up.
    warm = config.warmup_steps / config.max_steps if config.max_steps else 0.0
    decay = min(1.0, max(0.0, (progress - warm) / max(1e-9, 1 - warm)))
    return final + 0.5 * (1 + math.cos(math.pi * decay)) * (peak - final)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
