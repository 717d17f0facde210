"""AmIGO: amortized implicit gradient optimization (Arbel & Mairal, 2022).

Each outer step warm-starts both inner problems from the previous step (Alg. 1):

    y ← T steps of SGD on g(x, ·) (Alg. 2):          y ← y − ρ ∇_y g(x, y; B_t)
    v ← M steps of SGD on ½vᵀ∇²_yy g v − vᵀ∇_y f (Alg. 3):
                                                     v ← v − η (∇²_yy g(x, y; B_m) v − ∇_y f(x, y; B'))
        or, with `linear_solver="cg"` (AmIGO-CG), M iterations of CG on one mini-batch system
        ∇²_yy g(x, y; B) v = ∇_y f(x, y; B') from the previous v
    x ← x − γ (∇_x f(x, y; B') − ∇²_xy g(x, y; B'') v),     γ = ρ / outer_ratio

`inner` replaces the T SGD steps by AI-SARAH (no step) or SRKC steps (`stochastic_inner`).
`warm_start=False` restarts y from its initial value and v from 0 at every step instead: the
ablation of the amortization.

Oracle cost per step: T grad_inner (the inner optimizer's), M hvp (M + 1 with CG: its first
residual from the warm start), 1 cross, 1 grad_outer (∇_x f and ∇_y f on the same outer batch,
one call).

Reference: M. Arbel, J. Mairal. "Amortized implicit differentiation for stochastic bilevel
optimization", ICLR 2022, arXiv 2111.14580.
"""
from dataclasses import dataclass

import torch

from benchopt_bilevel import rng, stochastic_inner
from benchopt_bilevel.hypergradient import hessian_matvec, implicit_hypergradient
from benchopt_bilevel.linalg import conjugate_gradient, repeat, switch
from benchopt_bilevel.params import paper, reference
from benchopt_bilevel.solver import Choice, IntRange, LogUniform, Solver


@dataclass
class AmIGOParams:
    step_inner: float = reference(0.1, "solvers/amigo.py: step_size")  # ρ, and η for the linear system
    outer_ratio: float = reference(1.0, "solvers/amigo.py")  # γ = ρ / outer_ratio
    n_inner_steps: int = reference(10, "solvers/amigo.py")  # T
    # M: the reference runs n_inner_steps SGD steps on v too
    n_linear_steps: int = reference(10, "solvers/amigo.py: n_inner_steps, also the v steps")
    linear_solver: str = paper("sgd", "Alg. 3, SGD on the linear system")  # "sgd" (AmIGO) or "cg" (AmIGO-CG)
    inner: str = paper("sgd", "Alg. 2, SGD on the inner problem")
    warm_start: bool = paper(True, "Alg. 1: y and v start from the previous outer step's")

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
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "outer_ratio": LogUniform(0.1, 100.0),
                    "n_inner_steps": IntRange(1, 20), "linear_solver": Choice(("sgd", "cg"))}
    input_choices = ("linear_solver",)  # one fast build runs both (a search draws both)
    reference_name = "AmIGO"
    reference_params = {"step_size": "step_inner", "outer_ratio": "outer_ratio", "n_inner_steps": "n_inner_steps"}
    deviations = (
        "The reference's n_inner_steps also sets the number of SGD steps on v; here that is "
        "n_linear_steps (same default), so a replayed n_inner_steps leaves M at its default.",
        "The linear-system step η is the inner step ρ, as in the reference; the paper gives them separately.",
    )

    def __init__(self, params=None, **overrides) -> None:
        super().__init__(params, **overrides)
        stochastic_inner.validate(self.params.inner, self.name)

    def oracle_cost(self, facts):
        p = self.params
        cost = stochastic_inner.oracle_cost(p.inner, p.n_inner_steps)
        linear = p.n_linear_steps + (1 if p.linear_solver == "cg" else 0)
        cost["hvp"] = cost.get("hvp", 0) + linear
        return {**cost, "cross": 1, "grad_outer": 1}

    def init(self, oracles, x, y, key):
        return self.initial_state(x, y, key, v=torch.zeros_like(y), y_start=y)

    def step(self, oracles, state):
        p = self.params
        x = state["x"]
        y, v = (state["y"], state["v"]) if p.warm_start else (state["y_start"], torch.zeros_like(state["v"]))
        y, key = stochastic_inner.minimize(p.inner, oracles, x, y, state["key"], p.n_inner_steps, p.step_inner)
        key, k_outer, k_cross = rng.split(key, 3)
        outer_batch = oracles.sample_outer(k_outer)
        grad_x_f, grad_y_f = oracles.grad_outer(x, y, outer_batch)

        def linear_cg(v, key):
            key, k_cg = rng.split(key)
            batch = oracles.sample_inner(k_cg)
            return conjugate_gradient(hessian_matvec(oracles, x, y, batch), grad_y_f, v0=v, maxiter=p.n_linear_steps), key

        def linear_sgd(v, key):
            def linear_sgd_step(carry):
                v, key = carry
                key, k_hvp = rng.split(key)
                return v - p.step_inner * (oracles.hvp_inner(x, y, v, oracles.sample_inner(k_hvp)) - grad_y_f), key

            return repeat(p.n_linear_steps, linear_sgd_step, (v, key))

        v, key = switch(p.linear_solver, {"cg": linear_cg, "sgd": linear_sgd}, v, key)
        hypergradient = implicit_hypergradient(oracles, x, y, v, oracles.sample_inner(k_cross), grad_x_f)
        return {"x": x - p.step_inner / p.outer_ratio * hypergradient, "y": y, "v": v, "y_start": state["y_start"],
                "key": key, "hypergradient": hypergradient}
