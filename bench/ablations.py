"""The pieces `bench/recipe.py --ablate` adds to today's default, one at a time (issue 27).

Each entry is (row name, TrainConfig changes). The optimiser's pieces are
nanochat's (nanochat/optim.py, scripts/base_train.py), each an off-by-default
setting of slm_train; the model's pieces (`ABLATIONS_MODEL`) are filled in by
the model work of the same issue. The momentum warm-up's 0.16 is nanochat's
400 steps over the ~2,500 of its reference (d12) run, as a share of the budget.
"""

from __future__ import annotations

from typing import Any

ABLATIONS_OPTIM: list[tuple[str, dict[str, Any]]] = [
    ("+ Polar Express", {"polar_express": True}),
    ("+ NorMuon", {"normuon": True}),
    ("+ cautious weight decay on a cosine", {"cautious_weight_decay": True}),
    ("+ Muon momentum 0.85 -> 0.97 over 16 %", {"muon_momentum_warmup": 0.16}),
    ("+ nanochat's AdamW groups", {"adamw_groups": "nanochat"}),
]

ABLATIONS_MODEL: list[tuple[str, dict[str, Any]]] = []
