"""Broyden's method for fixed points z = T(z), batched per sample, with its low-rank inverse.

Root finding on r(z) = T(z) − z with "good" Broyden updates of an inverse-Jacobian estimate
H ≈ (∂r/∂z)⁻¹ = (J − I)⁻¹, kept as H = −I + Σ_k u_k v_kᵀ (one rank-one term per iteration):

    Δz = −H r,  z ← z + Δz,  Δr = r(z) − r_old,
    u = (Δz − H Δr) / (Δzᵀ H Δr),  vᵀ = Δzᵀ H.

Each of the batch's samples (rows of z) has its own estimate. A fixed number of iterations
(one evaluation of T each; one loop body when compiled) and no branch on tensor values; the returned z is, per sample, the
iterate of smallest residual. `(U, V)` is what SHINE reuses in the backward pass: Hᵀ b applies
the transposed estimate, an approximation of (Jᵀ − I)⁻¹ b.

Reference: C. G. Broyden. "A class of methods for solving nonlinear simultaneous equations",
Math. Comp. 1965; S. Bai, J. Z. Kolter, V. Koltun. "Deep equilibrium models", NeurIPS 2019.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..linalg import repeat

Tensor = torch.Tensor
LowRank = tuple[Tensor, Tensor]  # U, V: (batch, rank, n)


def _bdot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum(-1, keepdim=True)


def inverse_apply(estimate: LowRank, b: Tensor) -> Tensor:
    """H b = −b + Σ u_k (v_kᵀ b), per sample; b is (batch, n)."""
    U, V = estimate
    if U.shape[1] == 0:
        return -b
    return -b + torch.einsum("bkn,bk->bn", U, torch.einsum("bkn,bn->bk", V, b))


def inverse_apply_transpose(estimate: LowRank, b: Tensor) -> Tensor:
    """Hᵀ b = −b + Σ v_k (u_kᵀ b), per sample."""
    U, V = estimate
    return inverse_apply((V, U), b)


def broyden(fixed_point_map: Callable[[Tensor], Tensor], z0: Tensor, maxiter: int,
            initial: LowRank | None = None, eps: float = 1e-8) -> tuple[Tensor, LowRank, Tensor]:
    """Solve z = T(z) from z0 (batch, n) with `maxiter` evaluations of T (plus one at z0).

    `initial` is a starting low-rank inverse estimate (−I when None). Returns (z of smallest
    residual per sample, inverse estimate (U, V) with the initial terms first, relative
    residual ‖T(z) − z‖ / ‖T(z)‖ per sample).
    """
    if torch.compiler.is_compiling() and maxiter > 1:
        return _broyden_loop(fixed_point_map, z0, maxiter, initial, eps)
    U = [] if initial is None else list(initial[0].unbind(1))
    V = [] if initial is None else list(initial[1].unbind(1))
    estimate = lambda: (torch.stack(U, 1), torch.stack(V, 1)) if U else (  # noqa: E731
        z0.new_zeros(z0.shape[0], 0, z0.shape[1]), z0.new_zeros(z0.shape[0], 0, z0.shape[1]))
    z = z0
    fz = fixed_point_map(z)
    r = fz - z
    best_z, best_norm = z, torch.linalg.vector_norm(r, dim=-1, keepdim=True)
    best_scale = torch.linalg.vector_norm(fz, dim=-1, keepdim=True)
    for _ in range(maxiter):
        dz = -inverse_apply(estimate(), r)
        z = z + dz
        fz = fixed_point_map(z)
        r_new = fz - z
        dr = r_new - r
        r = r_new
        current = estimate()
        h_dr = inverse_apply(current, dr)
        v = inverse_apply_transpose(current, dz)  # Hᵀ Δz, so that vᵀ Δr = Δzᵀ H Δr
        denominator = _bdot(v, dr)
        denominator = torch.where(denominator.abs() > eps, denominator, torch.full_like(denominator, eps))
        U.append((dz - h_dr) / denominator)
        V.append(v)
        norm = torch.linalg.vector_norm(r, dim=-1, keepdim=True)
        better = norm < best_norm
        best_z = torch.where(better, z, best_z)
        best_scale = torch.where(better, torch.linalg.vector_norm(fz, dim=-1, keepdim=True), best_scale)
        best_norm = torch.where(better, norm, best_norm)
    relative = (best_norm / torch.clamp(best_scale, min=eps)).squeeze(-1)
    return best_z, estimate(), relative


def _broyden_loop(fixed_point_map: Callable[[Tensor], Tensor], z0: Tensor, maxiter: int,
                  initial: LowRank | None, eps: float) -> tuple[Tensor, LowRank, Tensor]:
    """`broyden` as one loop body, for a compiled or exported step: the estimate lives in
    buffers of its final rank, zero beyond the terms made so far (a zero term adds nothing to
    H b), and iteration k writes its slot. The same iterates as the eager loop up to the order
    of summation; eager keeps the growing stack, which does no work on terms not made yet."""
    rows, n = z0.shape
    empty = z0.new_zeros(rows, maxiter, n)
    U = empty if initial is None else torch.cat([initial[0], empty], 1)
    V = empty.clone() if initial is None else torch.cat([initial[1], empty], 1)
    slots = torch.arange(U.shape[1], device=z0.device)
    first = torch.full((), U.shape[1] - maxiter, dtype=torch.int64, device=z0.device)
    fz = fixed_point_map(z0)
    r = fz - z0
    best_norm = torch.linalg.vector_norm(r, dim=-1, keepdim=True)
    best_scale = torch.linalg.vector_norm(fz, dim=-1, keepdim=True)

    def iteration(carry):
        k, z, r, U, V, best_z, best_norm, best_scale = carry
        dz = -inverse_apply((U, V), r)
        z = z + dz
        fz = fixed_point_map(z)
        r_new = fz - z
        dr = r_new - r
        h_dr = inverse_apply((U, V), dr)
        v = inverse_apply_transpose((U, V), dz)
        denominator = _bdot(v, dr)
        denominator = torch.where(denominator.abs() > eps, denominator, torch.full_like(denominator, eps))
        slot = (slots == k).to(z.dtype)[None, :, None]
        U = U + slot * ((dz - h_dr) / denominator)[:, None, :]
        V = V + slot * v[:, None, :]
        norm = torch.linalg.vector_norm(r_new, dim=-1, keepdim=True)
        better = norm < best_norm
        best_z = torch.where(better, z, best_z)
        best_scale = torch.where(better, torch.linalg.vector_norm(fz, dim=-1, keepdim=True), best_scale)
        best_norm = torch.where(better, norm, best_norm)
        return k + 1, z, r_new, U, V, best_z, best_norm, best_scale

    _, _, _, U, V, best_z, best_norm, best_scale = repeat(
        maxiter, iteration, (first, z0, r, U, V, z0, best_norm, best_scale))
    relative = (best_norm / torch.clamp(best_scale, min=eps)).squeeze(-1)
    return best_z, (U, V), relative
