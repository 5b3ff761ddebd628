"""nanochat's architecture pieces as rows of the recipe race (issue 27): each alone on top of
today's default (qwen3-small, Muon + WSD), then all of them together.

`bench/recipe.py` imports `ABLATIONS_MODEL` for its ablation mode; each entry is
(label, changes), the changes in the form of recipe.py's LADDER (a "model" table
of GPTConfig fields). Every piece is an off-by-default GPTConfig field
(packages/slm-model/src/slm_model/config.py says what each does and why).
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
