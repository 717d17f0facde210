"""SRBA: SARAH-type recursive directions for y, v and x, restarted from full batches periodically.

With z = (y, v, x) and SOBA's directions D(z) = (∇_y g, ∇²_yy g v + ∇_y f, ∇²_xy g v + ∇_x f),
one SRBA period of length q is

    d ← D(z; full batch)                                   (restart)
    z⁺ = z − (ρ d_y, ρ d_v, γ d_x)
    q − 1 times:  d ← d + D(z⁺; B, B') − D(z; B, B'),  z ← z⁺,  z⁺ = z − (ρ d_y, ρ d_v, γ d_x)

with fresh blocks B (inner) and B' (outer) drawn per iteration and evaluated at both points.
Steps are constant, γ = ρ / outer_ratio (the reference benchmark's convention; the paper proves
O((n+m)^½ ε⁻¹) oracle calls to ε-stationarity with constant steps and q of order n + m). As in
the reference benchmark, the period is a fraction of one pass over the data counted in
mini-batches, q = ⌊period_frac · (n_inner_batches + n_outer_batches)⌋ (at least 1), so it grows
with the problem. The projection of v on a ball used in the analysis is not applied (neither
does the authors' implementation).

One solver step is one period, so that the restart is part of a fixed-cost pure step rather
than a branch on a step counter; `period(facts)` counts the iterations of a period. Its q − 1
recursive iterations are a `linalg.repeat` loop: in a fast build q is a tensor computed from the
period_frac input, so one build serves every period_frac.

Oracle cost per step: 1 grad_inner_full, 1 hvp_full + 1 cross_full, 1 grad_outer_full, then
2(q−1) grad_inner, 2(q−1) hvp + 2(q−1) cross, 2(q−1) grad_outer.

Reference: M. Dagréou, T. Moreau, S. Vaiter, P. Ablin. "A lower bound and a near-optimal
algorithm for bilevel empirical risk minimization", AISTATS 2024, arXiv 2302.08766.
"""
from dataclasses import dataclass

import torch

from benchopt_bilevel import rng
from benchopt_bilevel.facts import ProblemFacts
from benchopt_bilevel.linalg import repeat
from benchopt_bilevel.params import reference
from benchopt_bilevel.solver import LogUniform, Solver


@dataclass
class SRBAParams:
    step_inner: float = reference(0.1, "solvers/srba.py: step_size")  # ρ, for y and v
    outer_ratio: float = reference(1.0, "solvers/srba.py: outer_ratio")  # γ = ρ / outer_ratio
    period_frac: float = reference(0.5, "solvers/srba.py")  # q = period_frac · (n + m) blocks

    def __post_init__(self):
        if not self.period_frac > 0:
            raise ValueError(f"period_frac must be positive, got {self.period_frac}")


def period_length(period_frac: float | torch.Tensor, facts: ProblemFacts) -> int | torch.Tensor:
    """q: iterations per full-batch restart, a fraction of the inner and outer blocks (at least 1).

    A fast build's period_frac is a 0-dim tensor: q is then an int64 tensor, a loop's trip count,
    so one build serves every period_frac of a tuning run."""
    blocks = facts.n_inner_batches + facts.n_outer_batches
    if isinstance(period_frac, torch.Tensor):
        return torch.clamp(torch.floor(period_frac * blocks), min=1).to(torch.int64)
    return max(1, int(period_frac * blocks))


def directions(oracles, x, y, v, inner_batch, outer_batch):
    """SOBA's directions (D_y, D_v, D_x) at (x, y, v): one grad_inner, one vjp, one grad_outer."""
    grad_y_g, hvp, cross = oracles.grad_hvp_cross_inner(x, y, v, inner_batch)
    grad_x_f, grad_y_f = oracles.grad_outer(x, y, outer_batch)
    return grad_y_g, hvp + grad_y_f, cross + grad_x_f


def advanced(x, y, v, d_y, d_v, d_x, rho, gamma):
    """z⁺ = (x − γ d_x, y − ρ d_y, v − ρ d_v)."""
    return x - gamma * d_x, y - rho * d_y, v - rho * d_v


class SRBA(Solver):
    name = "srba"
    description = "Recursive (SARAH) directions for y, v and x with periodic full-batch restarts"
    reference = "Dagréou, Moreau, Vaiter & Ablin, AISTATS 2024, arXiv 2302.08766"
    family = "single loop, variance reduced"
    stochastic = True
    deviations = ("v is not projected on a ball (the analysis' safeguard); neither do the authors' "
                  "code and the reference benchmark.",)
    reference_name = "SRBA"
    reference_params = {"step_size": "step_inner", "outer_ratio": "outer_ratio", "period_frac": "period_frac"}
    Params = SRBAParams
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "outer_ratio": LogUniform(1e-2, 1e2),
                    "period_frac": LogUniform(0.1, 64.0)}

    def period(self, facts: ProblemFacts) -> int | torch.Tensor:
        return period_length(self.params.period_frac, facts)

    def oracle_cost(self, facts):
        q = self.period(facts) - 1
        return {"grad_inner_full": 1, "hvp_full": 1, "cross_full": 1, "grad_outer_full": 1,
                "grad_inner": 2 * q, "hvp": 2 * q, "cross": 2 * q, "grad_outer": 2 * q}

    def init(self, oracles, x, y, key):
        return self.initial_state(x, y, key, v=torch.zeros_like(y))

    def step(self, oracles, state):
        rho = self.params.step_inner
        gamma = rho / self.params.outer_ratio

        def recursive_iteration(carry):
            # z = (x, y, v) is the point of the last directions d; z⁺ = z − steps · d.
            key, x, y, v, *d = carry
            key, k_inner, k_outer = rng.split(key, 3)
            i, j = oracles.sample_inner(k_inner), oracles.sample_outer(k_outer)
            x_new, y_new, v_new = advanced(x, y, v, *d, rho, gamma)
            new = directions(oracles, x_new, y_new, v_new, i, j)
            old = directions(oracles, x, y, v, i, j)
            return (key, x_new, y_new, v_new, *(d_k + a - b for d_k, a, b in zip(d, new, old)))

        x, y, v = state["x"], state["y"], state["v"]
        restart = directions(oracles, x, y, v, None, None)
        # q − 1 recursive iterations: a loop with a tensor trip count in a fast build
        key, x, y, v, d_y, d_v, d_x = repeat(self.period(oracles.facts) - 1, recursive_iteration,
                                             (state["key"], x, y, v, *restart))
        x_new, y_new, v_new = advanced(x, y, v, d_y, d_v, d_x, rho, gamma)
        return {"x": x_new, "y": y_new, "v": v_new, "key": key, "hypergradient": d_x}
