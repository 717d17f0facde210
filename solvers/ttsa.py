"""TTSA: two-timescale stochastic approximation, one inner SGD step per outer step (Hong et al.).

    y ← y − β_t ∇_y g(x, y; B),                         β_t = β / (t+1)^{2/5}   (fast scale)
    v = Q η Π_{j=1}^{p} (I − η ∇²_yy g(x, y; B_j)) ∇_y f(x, y; B'),  p ~ U{0, …, Q−1}
    d = ∇_x f(x, y; B') − ∇²_xy g(x, y; B) v
    x ← x − α_t d,                                       α_t = α / (t+1)^{3/5}   (slow scale)

The decreasing steps are the paper's (α_t ∝ t^{-3/5}, β_t ∝ t^{-2/5}, Theorem 1 for strongly
convex outer problems); v is Ghadimi & Wang's unbiased random-length Neumann estimate, whose
Q−1 products are always computed and masked past p so that the step stays a pure function.

Oracle cost per step: 1 grad_inner, Q−1 hvp, 1 cross, 1 grad_outer.

Reference: M. Hong, H.-T. Wai, Z. Wang, Z. Yang. "A two-timescale stochastic algorithm
framework for bilevel optimization: complexity analysis and application to actor-critic",
SIAM J. Optim. 33(1), 2023, arXiv 2007.05170.
"""
from dataclasses import dataclass

from benchopt_bilevel import rng
from benchopt_bilevel.hypergradient import implicit_hypergradient, sampled_hessian_matvec
from benchopt_bilevel.linalg import random_neumann_product
from benchopt_bilevel.schedules import make_schedule
from benchopt_bilevel.solver import IntRange, LogUniform, Solver


@dataclass
class TTSAParams:
    step_inner: float = 0.1  # β, and η, the Neumann step
    outer_ratio: float = 1.0  # α = β · outer_ratio
    n_neumann_terms: int = 10  # Q
    decay_inner: float = 0.4  # β_t ∝ t^{-2/5}
    decay_outer: float = 0.6  # α_t ∝ t^{-3/5}

    def __post_init__(self):
        if self.n_neumann_terms < 1:
            raise ValueError(f"n_neumann_terms must be at least 1, got {self.n_neumann_terms}")


class TTSA(Solver):
    name = "ttsa"
    description = "One inner SGD step and a random-length Neumann hypergradient, on two time scales"
    reference = "Hong, Wai, Wang & Yang, SIAM J. Optim. 2023, arXiv 2007.05170"
    family = "single loop, stochastic"
    stochastic = True
    Params = TTSAParams
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "outer_ratio": LogUniform(1e-2, 10.0),
                    "n_neumann_terms": IntRange(1, 30)}

    def __init__(self, params=None, **overrides):
        super().__init__(params, **overrides)
        p = self.params
        self.beta = make_schedule(p.step_inner, p.decay_inner)
        self.alpha = make_schedule(p.step_inner * p.outer_ratio, p.decay_outer)

    def oracle_cost(self, facts):
        return {"grad_inner": 1, "hvp": self.params.n_neumann_terms - 1, "cross": 1, "grad_outer": 1}

    def init(self, oracles, x, y, key):
        return self.initial_state(x, y, key, t=self.counter(x))

    def step(self, oracles, state):
        p = self.params
        t, x = state["t"], state["x"]
        key, k_inner, k_outer = rng.split(state["key"], 3)
        inner_batch = oracles.sample_inner(k_inner)
        y = oracles.project_y(state["y"] - self.beta(t) * oracles.grad_inner_y(x, state["y"], inner_batch))
        grad_x_f, grad_y_f = oracles.grad_outer(x, y, oracles.sample_outer(k_outer))
        (v,), key = random_neumann_product(sampled_hessian_matvec(oracles, [(x, y)]), [grad_y_f], key=key,
                                           n_terms=p.n_neumann_terms, step=p.step_inner)
        d = implicit_hypergradient(oracles, x, y, v, inner_batch, grad_x_f)
        return {"x": x - self.alpha(t) * d, "y": y, "key": key, "t": t + 1, "hypergradient": d}
