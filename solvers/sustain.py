"""SUSTAIN: single-timescale double-momentum stochastic bilevel method (Khanduri et al.).

STORM momentum on both levels, as MRBO, but with Ghadimi & Wang's unbiased random-length
Neumann estimate of the inverse Hessian product (one random length shared by the current and
the previous point, the same batches at both):

    v = Q η Π_{j=1}^{p} (I − η ∇²_yy g(x, y; B_j)) ∇_y f(x, y; B'),   p ~ U{0, …, Q−1}
    Φ(x, y) = ∇_x f(x, y; B') − ∇²_xy g(x, y; B) v
    u ← ∇_y g(x, y; B) + (1 − η_t)(u − ∇_y g(x_prev, y_prev; B))
    w ← Φ(x, y) + (1 − η_t)(w − Φ(x_prev, y_prev))
    y ← y − β_t u,   x ← x − α_t w,   β_t, α_t ∝ (t+1)^{-1/3},  η_t ∝ (t+1)^{-2/3}

The Q−1 products are always computed and masked past p (a pure tensor step).

Oracle cost per step: 2 grad_inner, 2(Q−1) hvp, 2 cross, 2 grad_outer.

Reference: P. Khanduri, S. Zeng, M. Hong, H.-T. Wai, Z. Wang, Z. Yang. "A near-optimal
algorithm for stochastic bilevel optimization via double-momentum", NeurIPS 2021, arXiv 2102.07367.
"""
from dataclasses import dataclass

from benchopt_bilevel.hypergradient import sampled_hessian_matvec
from benchopt_bilevel.linalg import random_neumann_product
from benchopt_bilevel.solver import IntRange, LogUniform

from .mrbo import MRBO


@dataclass
class SUSTAINParams:
    step_inner: float = 0.1  # β, and the Neumann step η
    outer_ratio: float = 1.0  # α = β · outer_ratio
    momentum: float = 0.5  # η_t's scale
    n_neumann_terms: int = 10  # Q
    decay_step: float = 1 / 3
    decay_momentum: float = 2 / 3

    def __post_init__(self):
        if self.n_neumann_terms < 1 or not 0 < self.momentum <= 1:
            raise ValueError("need n_neumann_terms >= 1 and 0 < momentum <= 1")


class SUSTAIN(MRBO):
    name = "sustain"
    description = "Double momentum (STORM on both levels) with a random-length Neumann hypergradient"
    reference = "Khanduri et al., NeurIPS 2021, arXiv 2102.07367"
    family = "single loop, variance reduced"
    Params = SUSTAINParams
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "outer_ratio": LogUniform(1e-2, 10.0),
                    "momentum": LogUniform(0.05, 1.0), "n_neumann_terms": IntRange(1, 30)}

    def oracle_cost(self, facts):
        return {"grad_inner": 2, "hvp": 2 * (self.params.n_neumann_terms - 1), "cross": 2, "grad_outer": 2}

    def inverse_estimates(self, oracles, points, rhs, key):
        p = self.params
        return random_neumann_product(sampled_hessian_matvec(oracles, points), rhs, key=key, n_terms=p.n_neumann_terms,
                                      step=p.step_inner)
