"""NorMuon: after Muon orthogonalises an update, even out the step each neuron takes.

Where it sits: with `--normuon`, Muon (muon.py) passes every orthogonalised
update through `normalize_neurons` before applying it, keeping one running
second moment per neuron in its state. nanochat's optimiser does the same
("variance reduction" in nanochat/optim.py).

Why: an orthogonalised update U V^T has all singular values 1, but its rows
(one per output neuron) can still have very different norms, so some neurons
move much more than others. Li et al. ("NorMuon", 2025, arXiv:2510.05491)
keep an exponential average of each neuron's mean squared update, as Adam
keeps one per entry, and divide by its square root, so every neuron steps at a
similar rate; then rescale the whole update back to its Frobenius norm before
the division, so Muon's learning rate keeps its meaning. For a wide matrix
(fewer rows than columns) the average runs over rows instead, one per input
column, as nanochat does: the smaller side gets the statistics.
"""

from __future__ import annotations

import torch


def neuron_axis(update: torch.Tensor) -> int:
    """The axis averaged over: columns (one value per row) unless the matrix is wide."""
    return 1 if update.size(0) >= update.size(1) else 0


def normalize_neurons(
    update: torch.Tensor, second_moment: torch.Tensor, beta2: float
) -> torch.Tensor:
    """The update with each neuron divided by its running RMS, at the update's own norm.

    `second_moment` (shape (rows, 1), or (1, cols) for a wide matrix, float32)
    is updated in place: second_moment <- beta2 * second_moment + (1 - beta2) * mean(update^2).
    """
    u = update.to(second_moment.dtype)  # statistics in float32 even for a bfloat16 update
    mean_square = u.square().mean(dim=neuron_axis(u), keepdim=True)
    second_moment.lerp_(mean_square, 1 - beta2)
    scaled = u * second_moment.clamp(min=1e-10).rsqrt()
    scaled = scaled * (u.norm() / scaled.norm().clamp(min=1e-10))
    return scaled.to(update.dtype)


def second_moment_like(update: torch.Tensor) -> torch.Tensor:
    """A zero second moment of the shape `normalize_neurons` keeps for this update."""
    rows, cols = update.shape
    shape = (rows, 1) if neuron_axis(update) == 1 else (1, cols)
    dtype = torch.promote_types(update.dtype, torch.float32)
    return torch.zeros(shape, dtype=dtype, device=update.device)
