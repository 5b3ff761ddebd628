"""The optimisers and the learning-rate schedule.

AdamW (Loshchilov & Hutter, 2019) decays weights separately from the
gradient step. As in GPT-2 and nanoGPT, only weight matrices are decayed:
biases, norm scales and embeddings are not, because shrinking them towards
zero does not regularise anything useful.

With `optimizer="muon"`, the weight matrices inside the transformer blocks go
to Muon (muon.py) instead, at their own peak rate `muon_lr`, and AdamW keeps
the embeddings, the head, norms and biases (modded-nanogpt's split). The two
are stepped as one `Optimizers`, so the engine, the gradient scaler and the
checkpoints see a single optimiser either way.

Two schedules, both after a linear warm-up over `warmup_steps`: "cosine"
(nanoGPT's) decays from the peak to `final_lr` over the rest of the budget;
"wsd" (warm-up, stable, decay; Hu et al., 2024) holds the peak and decays
linearly to `final_lr` over the last `decay_fraction` of the budget. "The
budget" is whichever of steps, tokens or time runs out first, so a run limited
to 8 minutes decays over those 8 minutes. Every parameter group follows the
same curve, scaled to its own peak (`lr_scale`: Muon's is muon_lr / learning_rate).

nanochat's refinements are settings, all off by default: Polar Express,
NorMuon and cautious weight decay inside Muon (muon.py), Muon's momentum
warm-up and the cosine on its weight decay (`set_muon_schedules`, called by
the engine every step like `set_learning_rate`), and AdamW's per-kind groups
(nanochat_groups.py).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .config import ConfigError, LoopConfig
from .lora import trained_rows
from .muon import Muon
from .naming import setting
from .nanochat_groups import nanochat_adamw_groups

NORMUON_BETA2 = 0.9  # nanochat's decay rate for NorMuon's per-neuron second moment
MOMENTUM_START, MOMENTUM_END = 0.85, 0.97  # nanochat's Muon momentum warm-up


class Optimizers:
    """Several optimisers stepped as one.

    It has what the engine and `torch.amp.GradScaler` use of an optimiser:
    `param_groups` (the scaler unscales their gradients, and skips the whole
    step if any is inf or nan), `step`, `zero_grad`, and a state dict with
    one entry per optimiser, for exact resume.
    """

    def __init__(self, **optimizers: torch.optim.Optimizer) -> None:
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [group for optimizer in self.optimizers.values() for group in optimizer.param_groups]

    def step(self) -> None:
        for optimizer in self.optimizers.values():
            optimizer.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {name: optimizer.state_dict() for name, optimizer in self.optimizers.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "param_groups" in state:  # saved by slm before Muon: one AdamW
            state = {"adamw": state}
        if set(state) != set(self.optimizers):
            raise ConfigError(
                f"the checkpoint holds the state of {' + '.join(sorted(state))}, but this run "
                f"uses {' + '.join(sorted(self.optimizers))}; resume with the run's "
                f"{setting('optimizer')}"
            )
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state[name])


def make_optimizer(model: nn.Module, config: LoopConfig, device: torch.device) -> Optimizers:
    """AdamW alone, or Muon for the blocks' weight matrices with AdamW for the rest."""
    trainable = list({id(p): p for p in model.parameters() if p.requires_grad}.values())
    if not trainable:
        raise ConfigError("nothing to train: every parameter is frozen")
    optimizers: dict[str, torch.optim.Optimizer] = {}
    if config.optimizer == "muon":
        groups = muon_groups(model, config)
        if groups:
            optimizers["muon"] = Muon(groups, lr=config.muon_lr)
        taken = {id(p) for group in groups for p in group["params"]}
        trainable = [p for p in trainable if id(p) not in taken]
    if trainable:
        optimizers["adamw"] = torch.optim.AdamW(
            adamw_param_groups(model, trainable, config),
            lr=config.learning_rate,
            betas=(config.beta1, config.beta2),
            fused=device.type == "cuda",
        )
    return Optimizers(**optimizers)


def adamw_param_groups(model: nn.Module, parameters: list, config: LoopConfig) -> list:
    """slm's two groups (`adamw_groups`), or nanochat's per-kind ones (nanochat_groups.py)."""
    if config.adamw_groups == "slm":
        return adamw_groups(model, parameters, config)
    gpt = find_gpt(model)
    width = gpt.config.n_embd if gpt is not None else 768
    return nanochat_adamw_groups(
        model,
        parameters,
        config.learning_rate,
        width,
        lambda rest: adamw_groups(model, rest, config),
    )


def adamw_groups(model: nn.Module, parameters: list[nn.Parameter], config: LoopConfig) -> list:
    """Weight decay on weight matrices only: not on biases, norms or embeddings, nor on a
    matrix of which only some rows learn (`lora.train_rows`: decay would shrink the rest)."""
    embeddings = {
        id(module.weight) for module in model.modules() if isinstance(module, nn.Embedding)
    }
    decay, no_decay = [], []
    for parameter in parameters:
        matrix = parameter.dim() >= 2 and id(parameter) not in embeddings
        matrix = matrix and trained_rows(parameter) is None
        (decay if matrix else no_decay).append(parameter)
    return [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def muon_groups(model: nn.Module, config: LoopConfig) -> list[dict[str, Any]]:
    """The trainable linear weights of the transformer blocks, one group per way of splitting.

    Fused matrices are split into the maps they hold (muon.py says why):
    `attn.qkv` into query, key and value, SwiGLU's `mlp.fc` into gate and up.
    Decay is scaled so that a step shrinks the matrices as much as AdamW's does.
    LoRA adapters, a classifier's head and anything outside the GPT's `blocks`
    stay with AdamW.
    """
    gpt = find_gpt(model)
    if gpt is None:
        return []
    by_split: dict[tuple[int, ...] | None, list[nn.Parameter]] = {}
    for name, module in gpt.blocks.named_modules():
        if isinstance(module, nn.Linear) and module.weight.requires_grad:
            splits = fused_splits(gpt.config, name, module.weight)
            by_split.setdefault(splits, []).append(module.weight)
    scale = config.muon_lr / config.learning_rate
    return [
        {
            "params": params,
            "splits": list(splits) if splits else None,
            "lr_scale": scale,
            "weight_decay": config.weight_decay / scale,
            "base_weight_decay": config.weight_decay / scale,  # before the cosine, if any
            "polar_express": config.polar_express,
            "normuon_beta2": NORMUON_BETA2 if config.normuon else None,
            "cautious": config.cautious_weight_decay,
        }
        for splits, params in by_split.items()
    ]


def find_gpt(model: nn.Module) -> nn.Module | None:
    """The GPT inside a model (itself, or a classifier's body): it has `blocks` and `config`."""
    return next((m for m in model.modules() if hasattr(m, "blocks") and hasattr(m, "config")), None)


def fused_splits(c: Any, name: str, weight: torch.Tensor) -> tuple[int, ...] | None:
    """The row counts of the maps a fused weight holds (c: a GPTConfig), or None."""
    if name.endswith("attn.qkv"):
        kv = c.kv_heads * c.head_dim
        splits = (c.attention_width, kv, kv)
    elif name.endswith("mlp.fc") and c.mlp == "swiglu":
        splits = (c.mlp_hidden, c.mlp_hidden)
    else:
        return None
    return splits if sum(splits) == weight.size(0) else None


def learning_rate(config: LoopConfig, step: int, progress: float) -> float:
    """The AdamW learning rate for this step: warm-up, then cosine or WSD down to final_lr.

    `progress` is the fraction of the budget spent (0..1) before this step.
    """
    peak, final = config.learning_rate, config.final_lr
    if step < config.warmup_steps:
        return peak * (step + 1) / config.warmup_steps
    if config.max_steps is not None and progress >= 1:
        return final
    if config.schedule == "wsd":
        start = 1 - config.decay_fraction
        decay = min(1.0, max(0.0, (progress - start) / max(1e-9, config.decay_fraction)))
        return peak + decay * (final - peak)
    # Decay over the part of the budget left after warm-up.
    warm = config.warmup_steps / config.max_steps if config.max_steps else 0.0
    decay = min(1.0, max(0.0, (progress - warm) / max(1e-9, 1 - warm)))
    return final + 0.5 * (1 + math.cos(math.pi * decay)) * (peak - final)


def set_learning_rate(optimizer: Optimizers | torch.optim.Optimizer, lr: float) -> None:
    """Set each group's rate: `lr` times its `lr_scale` (1 for AdamW's groups)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def muon_momentum(config: LoopConfig, progress: float) -> float | None:
    """Muon's momentum now, or None to leave it (no warm-up set).

    nanochat raises it linearly from 0.85 to 0.97 over its first 400 steps,
    about a sixth of its reference run (d12: ~2,500 steps), so early steps,
    taken while the gradient still changes fast, average over a shorter
    memory. slm states the warm-up as a share of the budget, so that it scales
    to a budget of minutes: 0.16 is nanochat's.
    """
    warmup = config.muon_momentum_warmup
    if not warmup:
        return None
    done = min(1.0, progress / warmup)
    return MOMENTUM_START + done * (MOMENTUM_END - MOMENTUM_START)


def weight_decay_factor(config: LoopConfig, progress: float) -> float:
    """With cautious weight decay, nanochat's cosine from the full decay to 0 over the budget:
    decay matters while the weights are large and moving, less as the rate anneals."""
    if not config.cautious_weight_decay:
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def set_muon_schedules(optimizer: Optimizers, config: LoopConfig, progress: float) -> None:
    """Set Muon's momentum and weight decay for this point of the budget (optim's settings)."""
    muon = optimizer.optimizers.get("muon") if isinstance(optimizer, Optimizers) else None
    if muon is None:
        return
    momentum, factor = muon_momentum(config, progress), weight_decay_factor(config, progress)
    for group in muon.param_groups:
        if momentum is not None:
            group["momentum"] = momentum
        base = group.setdefault("base_weight_decay", group["weight_decay"])
        group["weight_decay"] = base * factor
