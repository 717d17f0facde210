"""SOBA: the single-loop stochastic bilevel method of Dagréou et al. (2022).

y, v and x move together, each along one stochastic direction per step:

    D_y = ∇_y g(x, y; B),  D_v = ∇²_yy g(x, y; B) v + ∇_y f(x, y; B'),  D_x = ∇²_xy g(x, y; B) v + ∇_x f(x, y; B')
    y ← y − ρ_t D_y,   v ← v − ρ_t D_v,   x ← x − γ_t D_x

(v tracks −[∇²_yy g]⁻¹ ∇_y f, the paper's sign convention), with ρ_t = ρ / (t+1)^a and
γ_t = γ / (t+1)^b, γ = ρ / outer_ratio (the reference benchmark's convention). B is an inner
mini-batch, B' an outer one.

Step schedules: the default is the paper's convergence theorem, a = 2/5 and b = 3/5 (the outer
step decays faster than the inner ones, so y and v track their targets). Constant steps
(decay_inner=0, decay_outer=0) are a legitimate variant, the one SABA's analysis uses; the
reference benchmark runs SOBA with a = b = 1/2 (decay_inner=0.5, decay_outer=0.5).

Oracle cost per step: 1 grad_inner, 1 hvp, 1 cross, 1 grad_outer (the first three at one point and
batch: `grad_hvp_cross_inner`, one pass over the batch where the problem supports it).

Reference: M. Dagréou, P. Ablin, S. Vaiter, T. Moreau. "A framework for bilevel optimization
that enables stochastic and global variance reduction algorithms", NeurIPS 2022, arXiv 2201.13409.
"""
from dataclasses import dataclass

import torch

from benchopt_bilevel import rng
from benchopt_bilevel.params import paper, reference
from benchopt_bilevel.schedules import make_schedule
from benchopt_bilevel.solver import LogUniform, Solver


@dataclass
class SOBAParams:
    step_inner: float = reference(0.1, "solvers/soba.py: step_size")  # ρ
    outer_ratio: float = reference(1.0, "solvers/soba.py: outer_ratio")  # γ = ρ / outer_ratio
    decay_inner: float = paper(0.4, "Theorem 1, ρ_t ∝ t^(-2/5) (theorem number from memory)")  # a
    decay_outer: float = paper(0.6, "Theorem 1, γ_t ∝ t^(-3/5) (theorem number from memory)")  # b


class SOBA(Solver):
    name = "soba"
    description = "Single-loop stochastic: y, v, x updated together along stochastic directions"
    reference = "Dagréou et al., NeurIPS 2022, arXiv 2201.13409"
    family = "single loop, stochastic"
    stochastic = True
    deviations = ("The reference benchmark decays both steps as 1/√(t+1); the default here is the "
                  "paper's analysis (t^(-2/5) inner, t^(-3/5) outer).",)
    reference_name = "SOBA"
    reference_params = {"step_size": "step_inner", "outer_ratio": "outer_ratio"}
    Params = SOBAParams
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "outer_ratio": LogUniform(1e-2, 1e2)}

    def __init__(self, params=None, **overrides):
        super().__init__(params, **overrides)
        p = self.params
        self.rho = make_schedule(p.step_inner, p.decay_inner)
        self.gamma = make_schedule(p.step_inner / p.outer_ratio, p.decay_outer)

    def oracle_cost(self, facts):
        return {"grad_inner": 1, "hvp": 1, "cross": 1, "grad_outer": 1}

    def init(self, oracles, x, y, key):
        return self.initial_state(x, y, key, v=torch.zeros_like(y), t=self.counter(x))

    def step(self, oracles, state):
        rho, gamma = self.rho(state["t"]), self.gamma(state["t"])
        x, y, v = state["x"], state["y"], state["v"]
        key, k_inner, k_outer = rng.split(state["key"], 3)
        inner_batch, outer_batch = oracles.sample_inner(k_inner), oracles.sample_outer(k_outer)

        grad_y_g, hvp, cross = oracles.grad_hvp_cross_inner(x, y, v, inner_batch)
        grad_x_f, grad_y_f = oracles.grad_outer(x, y, outer_batch)
        direction_x = cross + grad_x_f
        return {
            "x": x - gamma * direction_x,
            "y": y - rho * grad_y_g,
            "v": v - rho * (hvp + grad_y_f),
            "key": key,
            "t": state["t"] + 1,
            "hypergradient": direction_x,
        }
