"""stocBiO: stochastic bilevel optimizer with a Neumann-series adjoint on fresh mini-batches.

Each outer step (Ji, Yang & Liang, Algorithm 2):

    y ← T SGD steps on g(x, ·), a fresh inner batch each, warm-started at the previous y
    v_0 = ∇_y f(x, y; B'),   v ← η Σ_{q=0}^{Q} Π_{j≤q} (I − η ∇²_yy g(x, y; B_j)) v_0
          (Q HVPs, a fresh inner batch B_j for each)
    d = ∇_x f(x, y; B') − ∇²_xy g(x, y; B'') v,    x ← x − γ d

Oracle cost per step: T grad_inner, Q hvp, 1 cross, 1 grad_outer.

Reference: K. Ji, J. Yang, Y. Liang. "Bilevel optimization: convergence analysis and enhanced
design", ICML 2021, arXiv 2010.07962.
"""
from dataclasses import dataclass

from benchopt_bilevel import inner, rng
from benchopt_bilevel.hypergradient import implicit_hypergradient, sampled_hessian_matvec
from benchopt_bilevel.linalg import stochastic_neumann
from benchopt_bilevel.solver import IntRange, LogUniform, Solver


@dataclass
class StocBiOParams:
    step_inner: float = 0.1  # α, the inner SGD step, also η, the Neumann step
    outer_ratio: float = 1.0  # γ = α · outer_ratio
    n_inner_steps: int = 10  # T
    n_neumann_steps: int = 10  # Q

    def __post_init__(self):
        if self.n_inner_steps < 1 or self.n_neumann_steps < 0:
            raise ValueError("need n_inner_steps >= 1 and n_neumann_steps >= 0")


class StocBiO(Solver):
    name = "stocbio"
    description = "Inner SGD, then a Neumann-series adjoint with a fresh mini-batch per Hessian product"
    reference = "Ji, Yang & Liang, ICML 2021, arXiv 2010.07962"
    family = "implicit, stochastic"
    stochastic = True
    Params = StocBiOParams
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "outer_ratio": LogUniform(1e-2, 10.0),
                    "n_inner_steps": IntRange(1, 50), "n_neumann_steps": IntRange(1, 50)}

    def oracle_cost(self, facts):
        p = self.params
        return {"grad_inner": p.n_inner_steps, "hvp": p.n_neumann_steps, "cross": 1, "grad_outer": 1}

    def step(self, oracles, state):
        p = self.params
        x = state["x"]
        y, key = inner.sgd(oracles, x, state["y"], state["key"], p.n_inner_steps, p.step_inner)
        key, k_outer, k_cross = rng.split(key, 3)
        grad_x_f, grad_y_f = oracles.grad_outer(x, y, oracles.sample_outer(k_outer))
        (v,), key = stochastic_neumann(sampled_hessian_matvec(oracles, [(x, y)]), [grad_y_f], key=key,
                                       maxiter=p.n_neumann_steps, step=p.step_inner)
        d = implicit_hypergradient(oracles, x, y, v, oracles.sample_inner(k_cross), grad_x_f)
        return {"x": x - p.step_inner * p.outer_ratio * d, "y": y, "key": key, "hypergradient": d}
