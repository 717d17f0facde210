"""AmIGO: amortized implicit gradient optimization (Arbel & Mairal, 2022).

Each outer step warm-starts both inner problems from the previous step:

    y ← T steps of SGD on g(x, ·):               y ← y − ρ ∇_y g(x, y; B_t)
    v ← M steps of SGD on ½vᵀ∇²_yy g v − vᵀ∇_y f:  v ← v − η (∇²_yy g(x, y; B_m) v − ∇_y f(x, y; B'))
        (or M steps of CG on a mini-batch system, `linear_solver="cg"`)
    x ← x − γ (∇_x f(x, y; B') − ∇²_xy g(x, y; B) v)

Oracle cost per step: T + 0 grad_inner, M hvp, 1 cross, 1 grad_outer (∇_x f and ∇_y f on the
same outer batch, one call).

Reference: M. Arbel, J. Mairal. "Amortized implicit differentiation for stochastic bilevel
optimization", ICLR 2022, arXiv 2111.14580.
"""
from dataclasses import dataclass

import torch

from benchopt_bilevel import inner, rng
from benchopt_bilevel.hypergradient import hessian_matvec, implicit_hypergradient
from benchopt_bilevel.linalg import conjugate_gradient
from benchopt_bilevel.solver import Choice, IntRange, LogUniform, Solver


@dataclass
class AmIGOParams:
    step_inner: float = 0.1  # ρ, and η for the linear system
    outer_ratio: float = 1.0  # γ = ρ · outer_ratio
    n_inner_steps: int = 10  # T
    n_linear_steps: int = 10  # M
    linear_solver: str = "sgd"  # "sgd" (AmIGO) or "cg" (AmIGO-CG)

    def __post_init__(self):
        if self.linear_solver not in ("sgd", "cg"):
            raise ValueError(f"linear_solver must be 'sgd' or 'cg', got {self.linear_solver!r}")
        if self.n_inner_steps < 1 or self.n_linear_steps < 1:
            raise ValueError("n_inner_steps and n_linear_steps must be at least 1")


class AmIGO(Solver):
    name = "amigo"
    description = "Warm-started inner SGD and linear-system SGD (or CG), then one outer step"
    reference = "Arbel & Mairal, ICLR 2022, arXiv 2111.14580"
    family = "amortized implicit"
    stochastic = True
    Params = AmIGOParams
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "outer_ratio": LogUniform(1e-2, 10.0),
                    "n_inner_steps": IntRange(1, 20), "linear_solver": Choice(("sgd", "cg"))}

    def oracle_cost(self, facts):
        p = self.params
        return {"grad_inner": p.n_inner_steps, "hvp": p.n_linear_steps, "cross": 1, "grad_outer": 1}

    def init(self, oracles, x, y, key):
        return self.initial_state(x, y, key, v=torch.zeros_like(y))

    def step(self, oracles, state):
        p = self.params
        x, v = state["x"], state["v"]
        y, key = inner.sgd(oracles, x, state["y"], state["key"], p.n_inner_steps, p.step_inner)
        key, k_outer, k_cross = rng.split(key, 3)
        outer_batch = oracles.sample_outer(k_outer)
        grad_x_f, grad_y_f = oracles.grad_outer(x, y, outer_batch)
        if p.linear_solver == "cg":
            key, k_cg = rng.split(key)
            batch = oracles.sample_inner(k_cg)
            v = conjugate_gradient(hessian_matvec(oracles, x, y, batch), grad_y_f, v0=v, maxiter=p.n_linear_steps - 1)
        else:
            for _ in range(p.n_linear_steps):
                key, k_hvp = rng.split(key)
                v = v - p.step_inner * (oracles.hvp_inner(x, y, v, oracles.sample_inner(k_hvp)) - grad_y_f)
        hypergradient = implicit_hypergradient(oracles, x, y, v, oracles.sample_inner(k_cross), grad_x_f)
        return {"x": x - p.step_inner * p.outer_ratio * hypergradient, "y": y, "v": v, "key": key,
                "hypergradient": hypergradient}
