"""TTSA: two-timescale stochastic approximation, one inner SGD step per outer step (Hong et al.).

    y ← y − β_t ∇_y g(x, y; B),                         β_t = β / (t+1)^{2/5}   (fast scale)
    v = Q η Π_{j=1}^{p} (I − η ∇²_yy g(x, y; B_j)) ∇_y f(x, y; B'),  p ~ U{0, …, Q−1}
    d = ∇_x f(x, y; B') − ∇²_xy g(x, y; B) v
    x ← x − α_t d,                              α_t = (β / r) / (t+1)^{3/5}   (slow scale)

The decreasing steps are the paper's (α_t ∝ t^{-3/5}, β_t ∝ t^{-2/5}, Theorem 1 for strongly
convex outer problems); v is Ghadimi & Wang's unbiased random-length Neumann estimate, of
which only the p drawn products are computed (`linalg.repeat`: a pure, compilable step).

Oracle cost per step: 1 grad_inner, (Q−1)/2 hvp on average, 1 cross, 1 grad_outer.

Reference: M. Hong, H.-T. Wai, Z. Wang, Z. Yang. "A two-timescale stochastic algorithm
framework for bilevel optimization: complexity analysis and application to actor-critic",
SIAM J. Optim. 33(1), 2023, arXiv 2007.05170.
"""
from dataclasses import dataclass

from benchopt_bilevel import rng
from benchopt_bilevel.hypergradient import implicit_hypergradient, sampled_hessian_matvec
from benchopt_bilevel.linalg import random_neumann_product
from benchopt_bilevel.params import paper, reference
from benchopt_bilevel.schedules import make_schedule
from benchopt_bilevel.solver import IntRange, LogUniform, Solver


@dataclass
class TTSAParams:
    step_inner: float = reference(0.1, "solvers/ttsa.py: step_size")  # β, and η, the Neumann step
    outer_ratio: float = reference(1.0, "solvers/ttsa.py: outer_ratio")  # r: α = β / r
    n_neumann_terms: int = reference(10, "solvers/ttsa.py: n_hia_steps")  # Q
    decay_inner: float = paper(0.4, "Theorem 1, strongly convex outer: β_t ∝ t^(-2/5) (recalled)")
    decay_outer: float = paper(0.6, "Theorem 1, strongly convex outer: α_t ∝ t^(-3/5) (recalled)")

    def __post_init__(self):
        if self.n_neumann_terms < 1:
            raise ValueError(f"n_neumann_terms must be at least 1, got {self.n_neumann_terms}")


class TTSA(Solver):
    name = "ttsa"
    description = "One inner SGD step and a random-length Neumann hypergradient, on two time scales"
    reference = "Hong, Wai, Wang & Yang, SIAM J. Optim. 2023, arXiv 2007.05170"
    family = "single loop, stochastic"
    stochastic = True
    deviations = (
        "The decreasing steps of the strongly convex case are used on every problem; for a "
        "nonconvex outer problem the paper's theorem takes constant steps set from the horizon.",
        "The Neumann step η is the inner step β and the length Q is fixed, as in the reference "
        "benchmark.",
    )
    # The Neumann length p ~ U{0, …, Q−1} is drawn at every step: the hvp calls counted are the
    # drawn ones and oracle_cost declares their expectation.
    random_cost = "a random Neumann length per step; oracle_cost declares the expected hvp calls"
    reference_name = "TTSA"
    reference_params = {"step_size": "step_inner", "outer_ratio": "outer_ratio", "n_hia_steps": "n_neumann_terms"}
    Params = TTSAParams
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "outer_ratio": LogUniform(1e-1, 1e2),
                    "n_neumann_terms": IntRange(1, 30)}

    def __init__(self, params=None, **overrides):
        super().__init__(params, **overrides)
        p = self.params
        self.beta = make_schedule(p.step_inner, p.decay_inner)
        self.alpha = make_schedule(p.step_inner / p.outer_ratio, p.decay_outer)

    def oracle_cost(self, facts):
        # the Neumann products at their expected count E[p] = (Q−1)/2; the calls counted are the drawn ones
        return {"grad_inner": 1, "hvp": (self.params.n_neumann_terms - 1) / 2, "cross": 1, "grad_outer": 1}

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
