"""SUSTAIN: single-timescale double-momentum stochastic bilevel method (Khanduri et al.).

STORM momentum on both levels, as MRBO, but with Ghadimi & Wang's unbiased random-length
Neumann estimate of the inverse Hessian product (one random length shared by the current and
the previous point, the same batches at both):

    v = Q η Π_{j=1}^{p} (I − η ∇²_yy g(x, y; B_j)) ∇_y f(x, y; B'),   p ~ U{0, …, Q−1}
    Φ(x, y) = ∇_x f(x, y; B') − ∇²_xy g(x, y; B) v
    u ← ∇_y g(x, y; B) + (1 − η_t)(u − ∇_y g(x_prev, y_prev; B))
    w ← Φ(x, y) + (1 − η_t)(w − Φ(x_prev, y_prev))
    y ← y − β_t u,   x ← x − α_t w,   β_t ∝ (t+1)^{-1/3}, α_t = β_t / r,  η_t ∝ (t+1)^{-2/3}

Only the p drawn products are computed, at both points (`linalg.repeat`: a pure, compilable step).

Oracle cost per step: 2 grad_inner, 2 · (Q−1)/2 = Q−1 hvp on average, 2 cross, 2 grad_outer.

Reference: P. Khanduri, S. Zeng, M. Hong, H.-T. Wai, Z. Wang, Z. Yang. "A near-optimal
algorithm for stochastic bilevel optimization via double-momentum", NeurIPS 2021, arXiv 2102.07367.
"""
from dataclasses import dataclass

from benchopt_bilevel.hypergradient import sampled_hessian_matvec
from benchopt_bilevel.linalg import random_neumann_product
from benchopt_bilevel.params import paper, reference
from benchopt_bilevel.solver import IntRange, LogUniform

from .mrbo import MRBO


@dataclass
class SUSTAINParams:
    step_inner: float = reference(0.1, "solvers/sustain.py: step_size")  # β, and the Neumann step η
    outer_ratio: float = reference(1.0, "solvers/sustain.py: outer_ratio")  # r: α = β / r
    momentum: float = reference(0.5, "solvers/sustain.py: eta")  # η_t's scale
    n_neumann_terms: int = reference(10, "solvers/sustain.py: n_hia_steps")  # Q
    decay_step: float = paper(1 / 3, "Theorem 1: steps ∝ (w+t)^(-1/3) (recalled)")
    decay_momentum: float = paper(2 / 3, "Theorem 1: momentum weights ∝ step² (recalled)")

    def __post_init__(self):
        if self.n_neumann_terms < 1 or not 0 < self.momentum <= 1:
            raise ValueError("need n_neumann_terms >= 1 and 0 < momentum <= 1")


class SUSTAIN(MRBO):
    name = "sustain"
    description = "Double momentum (STORM on both levels) with a random-length Neumann hypergradient"
    reference = "Khanduri et al., NeurIPS 2021, arXiv 2102.07367"
    family = "single loop, variance reduced"
    deviations = (
        "Schedules are divided by (t+1)^power, as in the reference benchmark, not by the paper's "
        "(w+t)^power with an offset w from its analysis.",
        "At t = 0 the directions are plain stochastic estimates; the reference benchmark's first "
        "correction is taken against the point x = 0, y = 0.",
        "The Neumann step η is the inner step β and the length Q is fixed, as in the reference "
        "benchmark.",
    )
    # The Neumann length p ~ U{0, …, Q−1} is drawn at every step: the hvp calls counted are the
    # drawn ones and oracle_cost declares their expectation.
    random_cost = "a random Neumann length per step; oracle_cost declares the expected hvp calls"
    reference_name = "SUSTAIN"
    reference_params = {"step_size": "step_inner", "outer_ratio": "outer_ratio", "eta": "momentum",
                        "n_hia_steps": "n_neumann_terms"}
    Params = SUSTAINParams
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "outer_ratio": LogUniform(1e-1, 1e2),
                    "momentum": LogUniform(0.05, 1.0), "n_neumann_terms": IntRange(1, 30)}

    def oracle_cost(self, facts):
        # the Neumann products at their expected count E[p] = (Q−1)/2 per point; the calls counted are the drawn ones
        return {"grad_inner": 2, "hvp": self.params.n_neumann_terms - 1, "cross": 2, "grad_outer": 2}

    def inverse_estimates(self, oracles, points, rhs, key):
        p = self.params
        return random_neumann_product(sampled_hessian_matvec(oracles, points), rhs, key=key, n_terms=p.n_neumann_terms,
                                      step=p.step_inner)
