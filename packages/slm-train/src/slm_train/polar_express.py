"""Polar Express: Muon's orthogonalisation with a different polynomial at every step.

Where it sits: with `--polar-express`, Muon (muon.py) calls `polar_express`
instead of `orthogonalize` to turn each momentum matrix M = U S V^T into
(nearly) U V^T. nanochat's optimiser (nanochat/optim.py) does the same.

Why: Newton-Schulz applies one fixed odd polynomial five times, and Keller
Jordan's coefficients trade accuracy for speed, so the singular values land
anywhere in roughly [0.7, 1.2]. Amsel, Persson, Musco and Gower ("The Polar
Express", 2025, arXiv:2505.16932) choose each step's polynomial to be the
minimax-optimal one for the interval the singular values occupy after the
steps before it: the first step is aggressive (small values grow fast), the
later ones gentle, and after the same five matrix-product steps every singular
value sits much closer to 1. The coefficients below are the paper's for five
steps (safety factor 2e-2, cushion 2), the ones nanochat uses; the input is
divided by 1.01 times its Frobenius norm, the safety margin those
coefficients assume.
"""

from __future__ import annotations

import torch

# (a, b, c) per step: X <- aX + b(XX^T)X + c(XX^T)^2 X. From arXiv:2505.16932.
POLAR_EXPRESS_COEFFICIENTS = (
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
)


def polar_express(matrix: torch.Tensor, steps: int = 5, dtype: torch.dtype | None = None):
    """Approximately U V^T for matrix = U S V^T, by the Polar Express polynomials.

    Step k applies p_k(s) = a_k s + b_k s^3 + c_k s^5 to every singular value s,
    leaving U and V alone, exactly as `muon.orthogonalize` does with one fixed
    polynomial; only the coefficients change from step to step. `dtype`:
    bfloat16 on GPUs, float32 elsewhere, unless given.
    """
    if matrix.ndim != 2:
        raise ValueError(f"polar_express needs a matrix, got shape {tuple(matrix.shape)}")
    if not 1 <= steps <= len(POLAR_EXPRESS_COEFFICIENTS):
        raise ValueError(f"polar_express has coefficients for 1 to 5 steps, got {steps}")
    dtype = dtype or (torch.bfloat16 if matrix.is_cuda else torch.float32)
    x = matrix.to(dtype, copy=True)
    tall = x.size(0) > x.size(1)
    if tall:  # work on the smaller Gram matrix X X^T
        x = x.T
    x = x / (x.norm() * 1.01 + 1e-7)
    for a, b, c in POLAR_EXPRESS_COEFFICIENTS[:steps]:
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return (x.T if tall else x).to(matrix.dtype)
