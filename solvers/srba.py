"""SRBA: SARAH-type recursive directions for y, v and x, restarted from full batches periodically.

With z = (y, v, x) and SOBA's directions D(z) = (∇_y g, ∇²_yy g v + ∇_y f, ∇²_xy g v + ∇_x f),
one SRBA period of length q is

    d ← D(z; full batch)                                   (restart)
    z⁺ = z − (ρ d_y, ρ d_v, γ d_x)
    q − 1 times:  d ← d + D(z⁺; B, B') − D(z; B, B'),  z ← z⁺,  z⁺ = z − (ρ d_y, ρ d_v, γ d_x)

with fresh blocks B (inner) and B' (outer) drawn per iteration and evaluated at both points.
Steps are constant (the paper proves O((n+m)^½ ε⁻¹) oracle calls to ε-stationarity with
constant steps and q of order n + m). The projection of v on a ball used in the analysis is
not applied (neither does the authors' implementation).

One solver step is one period, so that the restart is part of a fixed-cost pure step rather
than a branch on a step counter; `period` counts the iterations of a period.

Oracle cost per step: 1 grad_inner_full, 1 hvp_full + 1 cross_full, 1 grad_outer_full, then
2(q−1) grad_inner, 2(q−1) hvp + 2(q−1) cross, 2(q−1) grad_outer.

Reference: M. Dagréou, T. Moreau, S. Vaiter, P. Ablin. "A lower bound and a near-optimal
algorithm for bilevel empirical risk minimization", AISTATS 2024, arXiv 2302.08766.
"""
from dataclasses import dataclass

import torch

from benchopt_bilevel import rng
from benchopt_bilevel.solver import IntRange, LogUniform, Solver


@dataclass
class SRBAParams:
    step_inner: float = 0.1  # ρ, for y and v
    outer_ratio: float = 1.0  # γ = ρ · outer_ratio
    period: int = 32  # q, iterations per restart (n + m blocks on the default quadratic: 16 + 16)

    def __post_init__(self):
        if self.period < 1:
            raise ValueError(f"period must be at least 1, got {self.period}")


def directions(oracles, x, y, v, inner_batch, outer_batch):
    """SOBA's directions (D_y, D_v, D_x) at (x, y, v): one grad_inner, one vjp, one grad_outer."""
    grad_y_g, hvp, cross = oracles.grad_hvp_cross_inner(x, y, v, inner_batch)
    grad_x_f, grad_y_f = oracles.grad_outer(x, y, outer_batch)
    return grad_y_g, hvp + grad_y_f, cross + grad_x_f


class SRBA(Solver):
    name = "srba"
    description = "Recursive (SARAH) directions for y, v and x with periodic full-batch restarts"
    reference = "Dagréou, Moreau, Vaiter & Ablin, AISTATS 2024, arXiv 2302.08766"
    family = "single loop, variance reduced"
    stochastic = True
    Params = SRBAParams
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "outer_ratio": LogUniform(1e-2, 10.0),
                    "period": IntRange(2, 128)}

    def oracle_cost(self, facts):
        q = self.params.period - 1
        return {"grad_inner_full": 1, "hvp_full": 1, "cross_full": 1, "grad_outer_full": 1,
                "grad_inner": 2 * q, "hvp": 2 * q, "cross": 2 * q, "grad_outer": 2 * q}

    def init(self, oracles, x, y, key):
        return self.initial_state(x, y, key, v=torch.zeros_like(y))

    def step(self, oracles, state):
        rho = self.params.step_inner
        gamma = rho * self.params.outer_ratio
        x, y, v, key = state["x"], state["y"], state["v"], state["key"]
        d_y, d_v, d_x = directions(oracles, x, y, v, None, None)
        hypergradient = d_x
        x_new, y_new, v_new = x - gamma * d_x, y - rho * d_y, v - rho * d_v
        for _ in range(self.params.period - 1):
            key, k_inner, k_outer = rng.split(key, 3)
            i, j = oracles.sample_inner(k_inner), oracles.sample_outer(k_outer)
            new = directions(oracles, x_new, y_new, v_new, i, j)
            old = directions(oracles, x, y, v, i, j)
            d_y, d_v, d_x = (d + a - b for d, a, b in zip((d_y, d_v, d_x), new, old))
            hypergradient = d_x
            x, y, v = x_new, y_new, v_new
            x_new, y_new, v_new = x - gamma * d_x, y - rho * d_y, v - rho * d_v
        return {"x": x_new, "y": y_new, "v": v_new, "key": key, "hypergradient": hypergradient}
