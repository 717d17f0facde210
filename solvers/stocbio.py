"""stocBiO: stochastic bilevel optimizer with a Neumann-series adjoint on fresh mini-batches.

Each outer step (Ji, Yang & Liang, Algorithm 2):

    y ← T SGD steps on g(x, ·), a fresh inner batch each, warm-started at the previous y
    v_0 = ∇_y f(x, y; B'),   v ← η Σ_{q=0}^{Q} Π_{j≤q} (I − η ∇²_yy g(x, y; B_j)) v_0
          (Q HVPs, a fresh inner batch B_j for each)
    d = ∇_x f(x, y; B') − ∇²_xy g(x, y; B'') v,    x ← x − γ d,    γ = α / outer_ratio

`inner` replaces the T SGD steps by AI-SARAH (no step) or SRKC steps (`stochastic_inner`).

Oracle cost per step: T grad_inner (the inner optimizer's), Q hvp, 1 cross, 1 grad_outer.

Reference: K. Ji, J. Yang, Y. Liang. "Bilevel optimization: convergence analysis and enhanced
design", ICML 2021, arXiv 2010.07962.
"""
from dataclasses import dataclass

from benchopt_bilevel import rng, stochastic_inner
from benchopt_bilevel.hypergradient import implicit_hypergradient, sampled_hessian_matvec
from benchopt_bilevel.linalg import stochastic_neumann
from benchopt_bilevel.params import paper, reference
from benchopt_bilevel.solver import IntRange, LogUniform, Solver


@dataclass
class StocBiOParams:
    # α, the inner SGD step, also η, the Neumann step
    step_inner: float = reference(0.1, "solvers/stocbio.py: step_size")
    outer_ratio: float = reference(1.0, "solvers/stocbio.py")  # γ = α / outer_ratio
    n_inner_steps: int = reference(10, "solvers/stocbio.py")  # T
    n_neumann_steps: int = reference(10, "solvers/stocbio.py: n_shia_steps")  # Q
    inner: str = paper("sgd", "Alg. 2, SGD on the inner problem")

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
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "outer_ratio": LogUniform(0.1, 100.0),
                    "n_inner_steps": IntRange(1, 50), "n_neumann_steps": IntRange(1, 50)}
    reference_name = "StocBiO"
    reference_params = {"step_size": "step_inner", "outer_ratio": "outer_ratio",
                        "n_inner_steps": "n_inner_steps", "n_shia_steps": "n_neumann_steps"}
    deviations = ("The Neumann step η is the inner step α, as in the reference; the paper keeps them apart "
                  "(the authors' code: η = 0.5, Q = 10 and T = 10 on 20 Newsgroups, Q = 3 and T = 200 on MNIST).",)

    def __init__(self, params=None, **overrides) -> None:
        super().__init__(params, **overrides)
        stochastic_inner.validate(self.params.inner, self.name)

    def oracle_cost(self, facts):
        p = self.params
        cost = stochastic_inner.oracle_cost(p.inner, p.n_inner_steps)
        cost["hvp"] = cost.get("hvp", 0) + p.n_neumann_steps
        return {**cost, "cross": 1, "grad_outer": 1}

    def step(self, oracles, state):
        p = self.params
        x = state["x"]
        y, key = stochastic_inner.minimize(p.inner, oracles, x, state["y"], state["key"], p.n_inner_steps,
                                           p.step_inner)
        key, k_outer, k_cross = rng.split(key, 3)
        grad_x_f, grad_y_f = oracles.grad_outer(x, y, oracles.sample_outer(k_outer))
        (v,), key = stochastic_neumann(sampled_hessian_matvec(oracles, [(x, y)]), [grad_y_f], key=key,
                                       maxiter=p.n_neumann_steps, step=p.step_inner)
        d = implicit_hypergradient(oracles, x, y, v, oracles.sample_inner(k_cross), grad_x_f)
        return {"x": x - p.step_inner / p.outer_ratio * d, "y": y, "key": key, "hypergradient": d}
