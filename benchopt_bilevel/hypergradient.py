"""The implicit hypergradient and the Hessian products its linear system needs, from the oracles.

With y ≈ y*(x) and v ≈ [∇²_yy g]⁻¹ ∇_y f (the adjoint), the implicit function theorem gives

    ∇h(x) ≈ ∇_x f(x, y) − ∇²_xy g(x, y) v.

Every method that forms this expression calls `implicit_hypergradient`; the matvecs below hand
∇²_yy g to the solvers of `linalg`, which never see the oracles.
"""
from __future__ import annotations

import torch

from .linalg import Matvec, SampledMatvec
from .oracles import Oracles

Tensor = torch.Tensor


def implicit_hypergradient(oracles: Oracles, x: Tensor, y: Tensor, v: Tensor, batch: Tensor | None,
                           grad_x_f: Tensor) -> Tensor:
    """∇_x f − ∇²_xy g(x, y; batch) v: one cross call (full batch when batch is None)."""
    return grad_x_f - oracles.cross_inner(x, y, v, batch)


def hessian_matvec(oracles: Oracles, x: Tensor, y: Tensor, batch: Tensor | None) -> Matvec:
    """w ↦ ∇²_yy g(x, y; batch) w, one hvp call per product."""
    return lambda w: oracles.hvp_inner(x, y, w, batch)


def sampled_hessian_matvec(oracles: Oracles, points: list[tuple[Tensor, Tensor]]) -> SampledMatvec:
    """(ws, key) ↦ [∇²_yy g(x, y; B) w at each (x, y) of `points`], one inner batch B drawn from
    `key` and shared by the points: the matvec of `linalg`'s stochastic Neumann estimates."""
    def matvec(ws: list[Tensor], key: Tensor) -> list[Tensor]:
        batch = oracles.sample_inner(key)
        return [oracles.hvp_inner(x, y, w, batch) for (x, y), w in zip(points, ws)]

    return matvec
