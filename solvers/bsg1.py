"""BSG-1: first-order bilevel stochastic gradient with rank-one Hessian surrogates.

The adjoint system's Hessians are replaced by outer products of the inner gradient,
∇²_yy g ≈ ∇_y g ∇_y gᵀ and ∇²_xy g ≈ ∇_x g ∇_y gᵀ, which collapses the implicit hypergradient to

    d = ∇_x f(x, y; B') − (⟨∇_y f(x, y; B'), ∇_y g(x, y; B)⟩ / ‖∇_y g(x, y; B)‖²) ∇_x g(x, y; B)

after T inner SGD steps y ← Π(y − α ∇_y g(x, y; B_t)) (or the chosen inner optimizer); then
x ← x − γ d with γ = α / outer_ratio. No second order.
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

Oracle cost per step: T grad_inner for the inner loop (inner="sgd"; otherwise that inner
optimizer's cost), then 1 grad_inner and 1 grad_outer.

Reference: T. Giovannelli, G. Kent, L. N. Vicente. "Inexact bilevel stochastic gradient methods
for constrained and unconstrained lower-level problems", arXiv 2110.00604, 2021.
"""
import math
from dataclasses import dataclass

import torch

from benchopt_bilevel import rng, stochastic_inner
from benchopt_bilevel.errors import UserError
from benchopt_bilevel.params import ours, paper
from benchopt_bilevel.solver import IntRange, LogUniform, Solver

Tensor = torch.Tensor


@dataclass
class BSG1Params:
    step_inner: float = ours(0.1, "no reference benchmark solver; the suite's common inner step")  # α
    outer_ratio: float = ours(1.0, "no reference benchmark solver; x and y on one step")  # γ = α / outer_ratio
    n_inner_steps: int = ours(10, "fixed T as the other first-order methods (BOME's authors run BSG-1 with 10)")  # T
    inner: str = paper("sgd", "Alg. 1: stochastic gradient steps on the lower level")

    def __post_init__(self):
        if self.n_inner_steps < 1:
            raise ValueError("n_inner_steps must be at least 1")
        if self.step_inner <= 0 or self.outer_ratio <= 0:
            raise ValueError("need step_inner and outer_ratio positive")


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
    deviations = (
        "The paper's experiments let the lower-level accuracy grow along the run (more inner "
        "steps as the outer iterations go, from memory); here T is fixed.",
    )
    Params = BSG1Params
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "outer_ratio": LogUniform(1e-2, 1e2),
                    "n_inner_steps": IntRange(1, 50)}

    def __init__(self, params=None, **overrides):
        super().__init__(params, **overrides)
        if self.params.inner not in stochastic_inner.INNER_OPTIMIZERS:
            raise UserError(f"bsg1: unknown inner optimizer {self.params.inner!r}; choose one of "
                            f"{', '.join(stochastic_inner.INNER_OPTIMIZERS)}")

    def skip(self, problem):
        if self.params.inner == "ai_sarah" and not problem.twice_differentiable:
            return f"{self.name} with inner=ai_sarah takes Hessian-vector products; {problem.name} is not twice differentiable"
        return super().skip(problem)

    def oracle_cost(self, facts):
        cost = dict(stochastic_inner.oracle_cost(self.params.inner, self.params.n_inner_steps))
        cost["grad_inner"] = cost.get("grad_inner", 0) + 1
        cost["grad_outer"] = 1
        return cost

    def init(self, oracles, x, y, key):
        return self.initial_state(x, oracles.project_y(y), key)

    def step(self, oracles, state):
        p = self.params
        x = state["x"]
        inner_step = math.inf if p.inner == "ai_sarah" else p.step_inner  # AI-SARAH needs no step
        y, key = stochastic_inner.INNER_OPTIMIZERS[p.inner](oracles, x, state["y"], state["key"],
                                                            p.n_inner_steps, inner_step)
        y = oracles.project_y(y)  # AI-SARAH's iterates are not projected
        key, k_inner, k_outer = rng.split(key, 3)
        grad_x_g, grad_y_g = oracles.grad_inner(x, y, oracles.sample_inner(k_inner))
        grad_x_f, grad_y_f = oracles.grad_outer(x, y, oracles.sample_outer(k_outer))
        if oracles.constrained:  # a static property of the problem, not a tensor value
            free = free_subspace_projector(oracles, y - p.step_inner * grad_y_g)
            grad_y_g, grad_y_f = free(grad_y_g), free(grad_y_f)
        d = rank_one_hypergradient(grad_x_f, grad_y_f, grad_x_g, grad_y_g)
        return {"x": x - (p.step_inner / p.outer_ratio) * d, "y": y, "key": key, "hypergradient": d}
