"""BSG-1: first-order bilevel stochastic gradient with rank-one Hessian surrogates.

The adjoint system's Hessians are replaced by outer products of the inner gradient,
∇²_yy g ≈ ∇_y g ∇_y gᵀ and ∇²_xy g ≈ ∇_x g ∇_y gᵀ, which collapses the implicit hypergradient to

    d = ∇_x f(x, y; B') − (⟨∇_y f(x, y; B'), ∇_y g(x, y; B)⟩ / ‖∇_y g(x, y; B)‖²) ∇_x g(x, y; B)

after T inner SGD steps y ← Π(y − α ∇_y g(x, y; B_t)); then x ← x − γ d. No second order.
The surrogate is good where the Hessians are close to gradient outer products (Gauss–Newton /
Fisher structure of per-sample losses); elsewhere, e.g. on the quadratic, it is biased and
its fixed points are not stationary points of h.

Constrained lower level (the problem has `constrained = True` and a `project_y`): the inner
steps are projected, so iterates stay feasible, and the surrogate is taken on the subspace left
free by the active constraints (the reduced adjoint system of the KKT conditions): with P the
projector on that subspace, d uses ⟨P∇_y f, P∇_y g⟩ / ‖P∇_y g‖². P is the Jacobian of the
projection at z = y − α∇_y g (a constraint is active when it stops the step), applied by a
one-sided difference of `project_y`: exact for boxes and polyhedra (piecewise-linear
projections) when the difference stays within one piece. Constraints must not depend on x.

Oracle cost per step: T + 1 grad_inner, 1 grad_outer.

Reference: T. Giovannelli, G. Kent, L. N. Vicente. "Inexact bilevel stochastic gradient methods
for constrained and unconstrained lower-level problems", arXiv 2110.00604, 2021.
"""
from dataclasses import dataclass

import torch

from benchopt_bilevel import inner, rng
from benchopt_bilevel.solver import IntRange, LogUniform, Solver

Tensor = torch.Tensor


@dataclass
class BSG1Params:
    step_inner: float = 0.1  # α
    outer_ratio: float = 1.0  # γ = α · outer_ratio
    n_inner_steps: int = 10  # T

    def __post_init__(self):
        if self.n_inner_steps < 1:
            raise ValueError("n_inner_steps must be at least 1")


def free_subspace_projector(oracles, z: Tensor):
    """w ↦ P w, P = ∂Π(z): the directions the active constraints at Π(z) leave free."""
    base = oracles.project_y(z)
    scale = torch.finfo(z.dtype).eps ** 0.5 * (1.0 + torch.max(torch.abs(z)))
    tiny = torch.finfo(z.dtype).tiny

    def apply(w: Tensor) -> Tensor:
        epsilon = scale / torch.clamp(torch.max(torch.abs(w)), min=tiny)
        return (oracles.project_y(z + epsilon * w) - base) / epsilon

    return apply


def rank_one_hypergradient(grad_x_f: Tensor, grad_y_f: Tensor, grad_x_g: Tensor, grad_y_g: Tensor) -> Tensor:
    """∇_x f − (⟨∇_y f, ∇_y g⟩ / ‖∇_y g‖²) ∇_x g (zero correction when ∇_y g = 0)."""
    norm2 = torch.sum(grad_y_g * grad_y_g)
    ratio = torch.sum(grad_y_f * grad_y_g) / torch.clamp(norm2, min=torch.finfo(norm2.dtype).tiny)
    return grad_x_f - ratio * grad_x_g


class BSG1(Solver):
    name = "bsg1"
    description = "First-order stochastic: rank-one Hessian surrogates; projected, active-set aware with constraints"
    reference = "Giovannelli, Kent & Vicente, arXiv 2110.00604, 2021"
    family = "first order, constraints"
    stochastic = True
    needs_second_order = False
    handles_constraints = True
    biased = ("rank-one surrogates of ∇²_yy g and ∇²_xy g: where the Hessians are not gradient "
              "outer products (e.g. the quadratic) the direction is biased and its fixed points are "
              "not stationary points of h")
    Params = BSG1Params
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "outer_ratio": LogUniform(1e-2, 10.0),
                    "n_inner_steps": IntRange(1, 50)}

    def oracle_cost(self, facts):
        return {"grad_inner": self.params.n_inner_steps + 1, "grad_outer": 1}

    def init(self, oracles, x, y, key):
        return self.initial_state(x, oracles.project_y(y), key)

    def step(self, oracles, state):
        p = self.params
        x = state["x"]
        y, key = inner.sgd(oracles, x, state["y"], state["key"], p.n_inner_steps, p.step_inner)
        key, k_inner, k_outer = rng.split(key, 3)
        grad_x_g, grad_y_g = oracles.grad_inner(x, y, oracles.sample_inner(k_inner))
        grad_x_f, grad_y_f = oracles.grad_outer(x, y, oracles.sample_outer(k_outer))
        if oracles.constrained:  # a static property of the problem, not a tensor value
            free = free_subspace_projector(oracles, y - p.step_inner * grad_y_g)
            grad_y_g, grad_y_f = free(grad_y_g), free(grad_y_f)
        d = rank_one_hypergradient(grad_x_f, grad_y_f, grad_x_g, grad_y_g)
        return {"x": x - p.step_inner * p.outer_ratio * d, "y": y, "key": key, "hypergradient": d}
