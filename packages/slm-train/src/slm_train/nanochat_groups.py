"""AdamW's parameter groups as nanochat sets them: a rate and betas for each kind of parameter.

Where it sits: with `--adamw-groups nanochat`, optim.make_optimizer builds
AdamW's groups here instead of `optim.adamw_groups` (one rate for all, decay
on matrices). Muon's matrices are unaffected.

Why: the parameters AdamW keeps do very different jobs. nanochat's
`GPT.setup_optimizer` (nanochat/gpt.py) gives the input embeddings a rate near
0.3 with a slow second moment (betas 0.8, 0.995): each row sees a gradient
only when its token occurs, so it needs big, rarely-damped steps; the output
head, which every token's loss pulls on, a small 0.008; and the learned
scalars of its architecture (residual and x0 lambdas, the smear gate), rates
of their own. The embedding, head and value-embedding rates are tuned for a
768-wide model and scaled by sqrt(768 / width), as nanochat does. A tied
embedding (slm's default) is also the head, and takes the head's settings:
the embedding's rate on the output layer makes training diverge.

Parameters are recognised by what they are, not by a list of names: the
`nn.Embedding` weights (value embeddings have "value" in their name), the
model's `lm_head`, 0-d and 1-element parameters or names with "lambda"
(scalars; "resid" ones at a hundredth of the scalar rate, as nanochat), names
with "smear". Everything else (norm scales, biases, a classifier's head)
keeps slm's settings from `optim.adamw_groups`.
"""

from __future__ import annotations

from typing import Any

from torch import nn

EMBEDDING_LR, HEAD_LR, SCALAR_LR, SMEAR_LR = 0.3, 0.008, 0.5, 0.2
REFERENCE_WIDTH = 768

# kind -> (rate, scaled by width, betas, weight decay), from nanochat's setup_optimizer
SETTINGS: dict[str, tuple[float, bool, tuple[float, float], float]] = {
    "head": (HEAD_LR, True, (0.8, 0.96), 0.01),
    "embedding": (EMBEDDING_LR, True, (0.8, 0.995), 0.001),
    "value_embedding": (EMBEDDING_LR * 0.5, True, (0.8, 0.995), 0.01),
    "residual_scalar": (SCALAR_LR * 0.01, False, (0.8, 0.95), 0.05),
    "scalar": (SCALAR_LR, False, (0.96, 0.95), 0.0),
    "smear": (SMEAR_LR, False, (0.8, 0.95), 0.0),
}


def parameter_kinds(model: nn.Module) -> dict[int, str]:
    """id(parameter) -> its kind (a key of SETTINGS), for the parameters that have one."""
    kinds: dict[int, str] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Embedding):
            kind = "value_embedding" if "value" in name else "embedding"
            kinds[id(module.weight)] = kind
    for name, parameter in model.named_parameters():
        if "smear" in name:
            kinds[id(parameter)] = "smear"
        elif parameter.numel() == 1 or "lambda" in name:
            kinds[id(parameter)] = "residual_scalar" if "resid" in name else "scalar"
    for module in model.modules():  # last: a tied embedding is also the head
        head = getattr(module, "lm_head", None)
        if isinstance(head, nn.Linear):
            kinds[id(head.weight)] = "head"
    return kinds


def nanochat_adamw_groups(
    model: nn.Module, parameters: list[nn.Parameter], base_lr: float, width: int, rest: Any
) -> list[dict[str, Any]]:
    """One group per kind present, at nanochat's settings; `rest(parameters)` groups the others.

    Each group's `lr_scale` is its peak rate over `base_lr` (the config's
    learning_rate), so the schedule moves every group along the same curve.
    """
    kinds = parameter_kinds(model)
    by_kind: dict[str, list[nn.Parameter]] = {}
    others = []
    for parameter in parameters:
        kind = kinds.get(id(parameter))
        (by_kind.setdefault(kind, []) if kind else others).append(parameter)
    groups = []
    for kind, params in by_kind.items():
        lr, scaled, betas, decay = SETTINGS[kind]
        lr = lr * (REFERENCE_WIDTH / width) ** 0.5 if scaled else lr
        groups.append(
            {
                "params": params,
                "kind": kind,
                "lr_scale": lr / base_lr,
                "betas": betas,
                "eps": 1e-10,
                "weight_decay": decay,
            }
        )
    return groups + [group for group in rest(others) if group["params"]]
