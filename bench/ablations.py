"""The pieces `bench/recipe.py --ablate` adds to today's default, one at a time (issue 27).

Each entry is (row name, TrainConfig changes), in the form of recipe.py's
LADDER. nanochat's architecture pieces (`ABLATIONS_MODEL`) are off-by-default
GPTConfig fields (packages/slm-model/src/slm_model/config.py says what each
does and why), each alone and then all of them together; its optimiser's
pieces (`ABLATIONS_OPTIM`, nanochat/optim.py and scripts/base_train.py) are
off-by-default settings of slm_train. The momentum warm-up's 0.16 is
nanochat's 400 steps over the ~2,500 of its reference (d12) run, as a share of
the budget.
"""

from __future__ import annotations

from typing import Any

# nanochat's MLP is 4x wide; qwen3-small's SwiGLU is 768 wide with three matrices, so
# ReLU^2 at 4 x 256 = 1024 with two has about the same weights (524 k against 590 k a block).
RELU2 = {"mlp": "relu2", "intermediate_size": 4 * 256}

ABLATIONS_MODEL: list[tuple[str, dict[str, Any]]] = [
    ("+ value embeddings (ResFormer)", {"model": {"value_embeds": True}}),
    ("+ residual and x0 lambdas", {"model": {"lambdas": True}}),
    ("+ smear gate", {"model": {"smear": True}}),
    ("+ ReLU^2 MLP, 4x wide", {"model": RELU2}),
    ("+ logit soft-cap 15", {"model": {"logit_softcap": 15.0}}),
    ("+ untied embeddings", {"model": {"tie_weights": False}}),
    ("+ norms without parameters", {"model": {"norm_weight": False}}),
    ("+ back-out of the middle layer", {"model": {"backout": True}}),
]

# Every piece at once: nanochat's architecture on slm's shape.
ALL_MODEL_PIECES: dict[str, Any] = {
    key: value for _, changes in ABLATIONS_MODEL for key, value in changes["model"].items()
}
ABLATIONS_MODEL.append(("+ all eight of nanochat's model pieces", {"model": ALL_MODEL_PIECES}))

ABLATIONS_OPTIM: list[tuple[str, dict[str, Any]]] = [
    ("+ Polar Express", {"polar_express": True}),
    ("+ NorMuon", {"normuon": True}),
    ("+ cautious weight decay on a cosine", {"cautious_weight_decay": True}),
    ("+ Muon momentum 0.85 -> 0.97 over 16 %", {"muon_momentum_warmup": 0.16}),
    ("+ nanochat's AdamW groups", {"adamw_groups": "nanochat"}),
]
