"""Approximate implicit differentiation (AID): the shared body of AID-CG, AID-Neumann, AID-FP.

Each outer step:

    y ← T steps of gradient descent on g(x, ·) from the previous y (warm start)
    v ← K iterations of a linear solver on ∇²_yy g(x, y) v = ∇_y f(x, y)
    x ← x − γ (∇_x f(x, y) − ∇²_xy g(x, y) v)

on the full batch (deterministic). The named methods are this loop with one linear solver each
(`linalg.get_linear_solver`). `inner` chooses the T inner steps among the optimizers of
`stochastic_inner`, run on the full batch: gradient descent (the papers'), AI-SARAH (gradient
descent with its curvature-read step, no step to tune) or Runge–Kutta–Chebyshev steps of s
gradients each.

Oracle cost per step: the inner optimizer's on the full batch, then K hvp (+1 for the first
residual of a warm-started CG), 1 cross, 1 grad_outer.
"""
from dataclasses import dataclass

import torch

from benchopt_bilevel import stochastic_inner
from benchopt_bilevel.hypergradient import hessian_matvec, implicit_hypergradient
from benchopt_bilevel.linalg import get_linear_solver
from benchopt_bilevel.params import ours, paper
from benchopt_bilevel.solver import IntRange, LogUniform, Solver


@dataclass
class AIDParams:
    # The inner gradient step, also the Neumann / fixed-point step (stable for L < 20).
    step_inner: float = ours(0.1, "stable on the conformance quadratic; tuned per problem")
    step_outer: float = ours(0.1, "as the other deterministic methods; tuned per problem")  # γ
    n_inner_steps: int = ours(10, "as ITD (the reference's jaxopt_ITD default)")  # T
    n_linear_steps: int = ours(10, "as T")  # K
    warm_start_v: bool = ours(True, "warm starts carry v across the slowly moving systems")
    inner: str = paper("sgd", "gradient descent on g, the papers' inner solver")

    def __post_init__(self):
        if self.n_inner_steps < 0 or self.n_linear_steps < 1:
            raise ValueError("need n_inner_steps >= 0 and n_linear_steps >= 1")
        if self.step_inner <= 0 or self.step_outer <= 0:
            raise ValueError("step sizes must be positive")


class ImplicitSolver(Solver):
    """Base of the AID family; subclasses set `linear_solver`."""

    linear_solver = "cg"
    stochastic = False
    family = "implicit"
    Params = AIDParams
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "step_outer": LogUniform(1e-3, 1.0),
                    "n_inner_steps": IntRange(1, 50), "n_linear_steps": IntRange(1, 50)}

    def __init__(self, params=None, **overrides) -> None:
        super().__init__(params, **overrides)
        stochastic_inner.validate(self.params.inner, self.name)

    def oracle_cost(self, facts):
        p = self.params
        # A warm-started CG spends one matvec on its first residual.
        extra = 1 if (self.linear_solver == "cg" and p.warm_start_v) else 0
        cost = {"hvp_full": p.n_linear_steps + extra, "cross_full": 1, "grad_outer_full": 1}
        for kind, count in stochastic_inner.oracle_cost(p.inner, p.n_inner_steps, full_batch=True).items():
            cost[kind] = cost.get(kind, 0) + count
        return cost

    def init(self, oracles, x, y, key):
        return self.initial_state(x, y, key, v=torch.zeros_like(y))

    def step(self, oracles, state):
        p = self.params
        x = state["x"]
        y, _ = stochastic_inner.minimize(p.inner, oracles, x, state["y"], state["key"], p.n_inner_steps,
                                         p.step_inner, full_batch=True)
        grad_x_f, grad_y_f = oracles.grad_outer(x, y, None)
        solve = get_linear_solver(self.linear_solver)
        options = {} if self.linear_solver == "cg" else {"step": p.step_inner}
        v = solve(hessian_matvec(oracles, x, y, None), grad_y_f,
                  v0=state["v"] if p.warm_start_v else None, maxiter=p.n_linear_steps, **options)
        hypergradient = implicit_hypergradient(oracles, x, y, v, None, grad_x_f)
        return {"x": x - p.step_outer * hypergradient, "y": y, "v": v, "key": state["key"],
                "hypergradient": hypergradient}
