"""BSA: bilevel stochastic approximation with a random-length Neumann product (Ghadimi & Wang).

Each outer step t:

    y ← T SGD steps on g(x, ·) with step α_t = α / (t+1)^a, a fresh inner batch each
    p ~ Uniform{0, …, N−1};   v = N η Π_{j=1}^{p} (I − η ∇²_yy g(x, y; B_j)) ∇_y f(x, y; B')
    d = ∇_x f(x, y; B') − ∇²_xy g(x, y; B'') v,    x ← x − γ_t d,  γ_t = γ / (t+1)^b

v is an unbiased estimate of the N-term Neumann sum η Σ_{k<N} (I − η∇²_yy g)^k ∇_y f, since
E[N 1{p = k}] = 1 (the paper's Algorithm 3). The random length is drawn from the state's key;
to keep the step a pure tensor function the N−1 products are always computed and those past p
are masked out, so a step spends N−1 HVPs where the paper's loop spends (N−1)/2 on average.

Oracle cost per step: T grad_inner, N−1 hvp, 1 cross, 1 grad_outer.

Reference: S. Ghadimi, M. Wang. "Approximation methods for bilevel programming",
arXiv 1802.02246, 2018.
"""
from dataclasses import dataclass

from benchopt_bilevel import inner, rng
from benchopt_bilevel.hypergradient import implicit_hypergradient, sampled_hessian_matvec
from benchopt_bilevel.linalg import random_neumann_product
from benchopt_bilevel.schedules import make_schedule
from benchopt_bilevel.solver import IntRange, LogUniform, Solver


@dataclass
class BSAParams:
    step_inner: float = 0.1  # α, the inner SGD step, also η, the Neumann step
    outer_ratio: float = 1.0  # γ = α · outer_ratio
    n_inner_steps: int = 10  # T
    n_neumann_terms: int = 10  # N
    decay_inner: float = 0.5  # a
    decay_outer: float = 0.5  # b

    def __post_init__(self):
        if self.n_inner_steps < 1 or self.n_neumann_terms < 1:
            raise ValueError("need n_inner_steps >= 1 and n_neumann_terms >= 1")


class BSA(Solver):
    name = "bsa"
    description = "Inner SGD, then an unbiased random-length Neumann product for the adjoint"
    reference = "Ghadimi & Wang, arXiv 1802.02246, 2018"
    family = "implicit, stochastic"
    stochastic = True
    Params = BSAParams
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "outer_ratio": LogUniform(1e-2, 10.0),
                    "n_inner_steps": IntRange(1, 50), "n_neumann_terms": IntRange(1, 50)}

    def __init__(self, params=None, **overrides):
        super().__init__(params, **overrides)
        p = self.params
        self.alpha = make_schedule(p.step_inner, p.decay_inner)
        self.gamma = make_schedule(p.step_inner * p.outer_ratio, p.decay_outer)

    def oracle_cost(self, facts):
        p = self.params
        return {"grad_inner": p.n_inner_steps, "hvp": p.n_neumann_terms - 1, "cross": 1, "grad_outer": 1}

    def init(self, oracles, x, y, key):
        return self.initial_state(x, y, key, t=self.counter(x))

    def step(self, oracles, state):
        p = self.params
        t, x = state["t"], state["x"]
        y, key = inner.sgd(oracles, x, state["y"], state["key"], p.n_inner_steps, self.alpha(t))
        key, k_outer, k_cross = rng.split(key, 3)
        grad_x_f, grad_y_f = oracles.grad_outer(x, y, oracles.sample_outer(k_outer))
        (v,), key = random_neumann_product(sampled_hessian_matvec(oracles, [(x, y)]), [grad_y_f], key=key,
                                           n_terms=p.n_neumann_terms, step=p.step_inner)
        d = implicit_hypergradient(oracles, x, y, v, oracles.sample_inner(k_cross), grad_x_f)
        return {"x": x - self.gamma(t) * d, "y": y, "key": key, "t": t + 1, "hypergradient": d}
