"""Muon: momentum, then orthogonalise each weight matrix's update (Jordan et al., 2024).

Where it sits: with `--optimizer muon`, optim.py gives the weight matrices
inside the transformer blocks to this optimizer and everything else
(embeddings, the head, norms, biases) to AdamW, as modded-nanogpt does.

Why: the momentum of a weight matrix's gradient, M = U S V^T, is dominated by
a few directions with large singular values; a step along M mostly moves
those. Muon steps along U V^T instead, the nearest matrix whose singular
values are all 1, so every direction the gradient has found moves at the same
rate. U V^T is computed without an SVD, by five steps of a Newton-Schulz
iteration that uses only matrix products (`orthogonalize`).

Fused matrices: slm_model keeps query, key and value in one matrix
(`attn.qkv`, rows [n_head * head_dim, kv_heads * head_dim, kv_heads * head_dim]) and
SwiGLU's gate and up projections in another (`mlp.fc`, rows [hidden, hidden]).
They are separate linear maps that happen to share storage, so a parameter
group can carry `splits` (row counts), and each part is orthogonalised and
scaled by itself, as if it were its own matrix. `torch.optim.Muon` (torch
2.9+) takes each parameter whole and only as a 2-D tensor, so it cannot do
this; its update rule is otherwise the same as this one, which the tests check
step for step on unsplit matrices.

Precision: the iteration runs in bfloat16 on GPUs, as the original does, and
on CPUs with native bfloat16 matmuls (AVX512-BF16, AMX), where they are about
2.5x float32's speed; elsewhere (no native support: bfloat16 would be slower)
in float32. The iteration only needs singular values near 1, not exact ones,
so bfloat16's 8 bits of mantissa are enough (issue 26 compared the validation
losses: docs/benchmarks.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from .normuon import normalize_neurons, second_moment_like
from .polar_express import polar_express
from .runtime import cpu_has_native_bf16

# Keller Jordan's quintic: chosen to push every singular value up towards 1 as fast
# as possible, at the price of landing in roughly [0.7, 1.2] rather than exactly on 1.
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalize(matrix: torch.Tensor, steps: int = 5, dtype: torch.dtype | None = None):
    """Approximately U V^T for matrix = U S V^T, by Newton-Schulz iteration.

    Each step maps X to aX + b(XX^T)X + c(XX^T)^2 X, which applies the odd
    polynomial p(s) = as + bs^3 + cs^5 to every singular value s of X and
    leaves U and V alone. Dividing by the Frobenius norm first puts every s in
    (0, 1], where repeated p drives them towards 1. `dtype`: `ns_dtype`'s
    choice for the matrix's device, unless given.
    """
    if matrix.ndim != 2:
        raise ValueError(f"orthogonalize needs a matrix, got shape {tuple(matrix.shape)}")
    a, b, c = NS_COEFFICIENTS
    dtype = dtype or ns_dtype(matrix.device)
    x = matrix.to(dtype, copy=True)
    tall = x.size(0) > x.size(1)
    if tall:  # work on the smaller Gram matrix X X^T
        x = x.T
    x = x / x.norm().clamp(min=1e-7)
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return (x.T if tall else x).to(matrix.dtype)


def ns_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 where its matmuls are native (GPUs; CPUs with AVX512-BF16 or AMX), else float32."""
    native = device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
    return torch.bfloat16 if native else torch.float32


class Muon(torch.optim.Optimizer):
    """Nesterov momentum, orthogonalised per matrix (or per part of a fused matrix).

    For each parameter W with gradient G and momentum buffer B:

        B <- momentum * B + (1 - momentum) * G
        update <- G + momentum * (B - G)        (Nesterov; B itself without it)
        W <- W * (1 - lr * weight_decay)
        W <- W - lr * sqrt(max(1, rows / cols)) * orthogonalize(update)

    The sqrt factor (the original's) gives tall matrices the same per-entry
    step size as square ones. A group's `splits` (row counts summing to the
    rows of every matrix in it) applies the last line to each block of rows.

    Three of nanochat's refinements, each off unless its group says so (the
    engine's schedules, optim.py, set them from the config): `polar_express`
    orthogonalises with Polar Express's polynomials (polar_express.py);
    `normuon_beta2` evens out the neurons' steps afterwards (normuon.py);
    `cautious` decays only the entries where the step and the weight have the
    same sign, so that decay never pushes against the update (Chen et al.,
    "Cautious Weight Decay", 2025; nanochat applies it to Muon's matrices).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.02,
        momentum: float = 0.95,
        nesterov: bool = True,
        weight_decay: float = 0.0,
        ns_steps: int = 5,
        ns_dtype: torch.dtype | None = None,
    ) -> None:
        if not lr >= 0 or not 0 <= momentum < 1 or not weight_decay >= 0:
            raise ValueError(
                f"need lr >= 0, 0 <= momentum < 1 and weight_decay >= 0; "
                f"got {lr}, {momentum} and {weight_decay}"
            )
        defaults = dict(
            lr=lr,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
            ns_steps=ns_steps,
            splits=None,
            polar_express=False,
            normuon_beta2=None,
            cautious=False,
        )
        super().__init__(params, defaults)
        self.ns_dtype = ns_dtype
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim != 2:
                    raise ValueError(f"Muon takes only matrices, got shape {tuple(p.shape)}")
                if group["splits"] is not None and sum(group["splits"]) != p.size(0):
                    raise ValueError(f"splits {group['splits']} do not add up to {p.size(0)} rows")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum = group["lr"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buffer = state["momentum_buffer"]
                buffer.lerp_(p.grad, 1 - momentum)
                update = p.grad.lerp(buffer, momentum) if group["nesterov"] else buffer
                splits = group["splits"] or [p.size(0)]
                parts = zip(p.split(splits), update.split(splits), strict=True)
                for index, (part, change) in enumerate(parts):
                    step = self.direction(change, group, state, index)
                    decay(part, step, lr * group["weight_decay"], group.get("cautious", False))
                    scale = math.sqrt(max(1.0, part.size(0) / part.size(1)))
                    part.add_(step, alpha=-lr * scale)
        return loss

    def direction(self, change: torch.Tensor, group: dict, state: dict, index: int):
        """The orthogonalised (and, with NorMuon, neuron-normalised) step for one part."""
        # .get: a group loaded from a checkpoint saved before these options has none of them
        orthogonal = polar_express if group.get("polar_express") else orthogonalize
        step = orthogonal(change, group["ns_steps"], self.ns_dtype or ns_dtype(change.device))
        if group.get("normuon_beta2") is None:
            return step
        key = f"neuron_second_moment_{index}"  # one per part of a fused matrix
        if key not in state:
            state[key] = second_moment_like(step)
        return normalize_neurons(step, state[key], group["normuon_beta2"])


def decay(part: torch.Tensor, step: torch.Tensor, amount: float, cautious: bool) -> None:
    """Decoupled weight decay, W <- W (1 - amount); if cautious, only where W and the step
    agree in sign (the step is subtracted, so there decay and update both shrink W)."""
    if not cautious:
        part.mul_(1 - amount)
    elif amount:
        part.sub_(part * (part * step >= 0), alpha=amount)
