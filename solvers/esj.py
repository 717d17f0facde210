"""ESJ (PZOBO): Hessian-free hypergradient with an evolution-strategies estimate of dy_T/dx.

Each outer step, from the current y (warm start):

    y_T(x) ← T GD steps on g(x, ·);   u_1 … u_Q ~ N(0, I_{d_x})
    y_T(x + μ u_q) ← the same T steps from the same start at the perturbed outer point
    δ_q = (y_T(x + μ u_q) − y_T(x)) / μ          (≈ J_T u_q,  J_T = ∂y_T/∂x)
    Ĵ = (1/Q) Σ_q δ_q u_qᵀ                        (Gaussian smoothing: E[Ĵ] → J_T as μ → 0)
    d = ∇_x f(x, y_T) + Ĵᵀ ∇_y f(x, y_T) = ∇_x f + (1/Q) Σ_q ⟨δ_q, ∇_y f⟩ u_q,   x ← x − γ d

Only gradients of g and f: no HVP, no cross derivative. Ĵ is never formed (Q dot products).

Oracle cost per step (full batch): (Q + 1)·T grad_inner, 1 grad_outer.

Reference: D. Sow, K. Ji, Y. Liang. "On the convergence theory for Hessian-free bilevel
algorithms", NeurIPS 2022, arXiv 2110.07004.
"""
from dataclasses import dataclass

import torch

from benchopt_bilevel import rng
from benchopt_bilevel.solver import IntRange, LogUniform, Solver

Tensor = torch.Tensor


@dataclass
class ESJParams:
    step_inner: float = 0.1  # α
    outer_ratio: float = 1.0  # γ = α · outer_ratio
    n_inner_steps: int = 10  # T
    n_directions: int = 1  # Q
    smoothing: float = 0.1  # μ

    def __post_init__(self):
        if self.n_inner_steps < 1 or self.n_directions < 1:
            raise ValueError("need n_inner_steps >= 1 and n_directions >= 1")
        if self.smoothing <= 0:
            raise ValueError("smoothing must be positive")


def inner_run(oracles, x: Tensor, y: Tensor, step: float, batches: list) -> Tensor:
    """GD (or SGD on the given batches, None = full batch) from y: one step per batch."""
    for batch in batches:
        y = y - step * oracles.grad_inner_y(x, y, batch)
    return y


def perturbed_differences(oracles, x: Tensor, y0: Tensor, directions: Tensor, smoothing: float,
                          step: float, batches: list) -> tuple[Tensor, Tensor]:
    """y_T(x) and the rows δ_q = (y_T(x + μ u_q) − y_T(x)) / μ, all runs from y0 on `batches`."""
    y_T = inner_run(oracles, x, y0, step, batches)
    differences = torch.stack([
        (inner_run(oracles, x + smoothing * u.reshape(x.shape), y0, step, batches) - y_T).reshape(-1)
        for u in directions]) / smoothing
    return y_T, differences


def jacobian_estimate(directions: Tensor, differences: Tensor) -> Tensor:
    """Ĵ = (1/Q) Σ_q δ_q u_qᵀ, shape (d_y, d_x) (for tests and diagnostics; steps never form it)."""
    return differences.T @ directions / directions.shape[0]


def es_hypergradient(grad_x_f: Tensor, grad_y_f: Tensor, directions: Tensor, differences: Tensor) -> Tensor:
    """∇_x f + Ĵᵀ ∇_y f = ∇_x f + (1/Q) Σ_q ⟨δ_q, ∇_y f⟩ u_q."""
    weights = differences @ grad_y_f.reshape(-1)
    return grad_x_f + (weights @ directions).reshape(grad_x_f.shape) / directions.shape[0]


class ESJ(Solver):
    name = "esj"
    description = "Hessian-free: Jacobian of the inner solution by Gaussian smoothing over Q perturbed inner runs"
    reference = "Sow, Ji & Liang, NeurIPS 2022, arXiv 2110.07004"
    family = "zeroth order (Hessian free)"
    stochastic = False
    needs_second_order = False
    Params = ESJParams
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "outer_ratio": LogUniform(1e-2, 10.0),
                    "n_inner_steps": IntRange(1, 50), "n_directions": IntRange(1, 20),
                    "smoothing": LogUniform(1e-3, 1.0)}

    def oracle_cost(self, facts):
        p = self.params
        return {"grad_inner_full": (p.n_directions + 1) * p.n_inner_steps, "grad_outer_full": 1}

    def step(self, oracles, state):
        p = self.params
        x = state["x"]
        key, k_directions = rng.split(state["key"])
        directions = rng.normal(k_directions, (p.n_directions, x.numel()), x.dtype)
        y, differences = perturbed_differences(oracles, x, state["y"], directions, p.smoothing,
                                               p.step_inner, [None] * p.n_inner_steps)
        grad_x_f, grad_y_f = oracles.grad_outer(x, y, None)
        d = es_hypergradient(grad_x_f, grad_y_f, directions, differences)
        return {"x": x - p.step_inner * p.outer_ratio * d, "y": y, "key": key, "hypergradient": d}
