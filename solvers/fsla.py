"""FSLA: fully single-loop bilevel method, one v step per outer step and momentum on x (Li et al.).

    y⁺ = y − ρ_t ∇_y g(x, y; B₁)
    v⁺ = v − ρ_t (∇²_yy g(x, y⁺; B₂) v − ∇_y f(x, y⁺; B'))      (v tracks [∇²_yy g]⁻¹ ∇_y f)
    D(x, y, v) = ∇_x f(x, y; B') − ∇²_xy g(x, y; B₃) v
    d ← D(x, y⁺, v⁺) + (1 − η_t)(d − D(x_prev, y, v))                (STORM, same batches)
    x_prev ← x;   x ← x − γ_t d

with ρ_t = ρ/√(t+1), γ_t = γ/√(t+1), γ = ρ / outer_ratio, and η_t = η/√(t+1), η = ρ unless
`momentum` is given: the reference benchmark's schedules, which tie the momentum weight to the
inner step. At t = 0 d is the plain estimate. The previous point of the correction is the one
at which the last D was evaluated: (x_{t−1}, y_t, v_t). One outer batch B' serves the v step
and both D (the reference benchmark draws a second one for the D's: one grad_outer more).

Oracle cost per step: 1 grad_inner, 1 hvp, 2 cross, 2 grad_outer.

Reference: J. Li, B. Gu, H. Huang. "A fully single loop algorithm for bilevel optimization
without Hessian inverse", AAAI 2022, arXiv 2112.04660.
"""
from dataclasses import dataclass

import torch

from benchopt_bilevel import rng
from benchopt_bilevel.hypergradient import implicit_hypergradient
from benchopt_bilevel.params import reference
from benchopt_bilevel.schedules import make_schedule
from benchopt_bilevel.solver import LogUniform, Solver


@dataclass
class FSLAParams:
    step_inner: float = reference(0.1, "solvers/fsla.py: step_size")  # ρ, for y and v
    outer_ratio: float = reference(1.0, "solvers/fsla.py: outer_ratio")  # γ = ρ / outer_ratio
    # η: weight of the fresh estimate; None ties it to ρ
    momentum: float | None = reference(None, "solvers/fsla.py ties η to step_size; None: η = step_inner")
    decay: float = reference(0.5, "solvers/fsla.py: exponents 0.5")  # every schedule ∝ 1/(t+1)^decay



class FSLA(Solver):
    name = "fsla"
    description = "Fully single loop: one y step, one v step and a momentum-corrected x step"
    reference = "Li, Gu & Huang, AAAI 2022, arXiv 2112.04660"
    family = "single loop, stochastic"
    stochastic = True
    deviations = (
        "One outer batch serves the v step and the hypergradient estimates; the reference benchmark "
        "draws a second one for the estimates (one more grad_outer per step).",
        "At t = 0 the direction is the plain stochastic estimate; the reference benchmark's first "
        "correction is taken against the point x = 0.",
    )
    reference_name = "FSLA"
    reference_params = {"step_size": "step_inner", "outer_ratio": "outer_ratio"}
    Params = FSLAParams
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "outer_ratio": LogUniform(1e-2, 1e2),
                    "momentum": LogUniform(0.01, 1.0)}

    def __init__(self, params=None, **overrides):
        super().__init__(params, **overrides)
        p = self.params
        self.rho = make_schedule(p.step_inner, p.decay)
        self.gamma = make_schedule(p.step_inner / p.outer_ratio, p.decay)
        self.eta = make_schedule(p.step_inner if p.momentum is None else p.momentum, p.decay)

    def oracle_cost(self, facts):
        return {"grad_inner": 1, "hvp": 1, "cross": 2, "grad_outer": 2}

    def init(self, oracles, x, y, key):
        return self.initial_state(x, y, key, v=torch.zeros_like(y), x_prev=x, d=torch.zeros_like(x),
                                  t=self.counter(x))

    def step(self, oracles, state):
        t, x, y, v, x_prev = state["t"], state["x"], state["y"], state["v"], state["x_prev"]
        rho, gamma, eta = self.rho(t), self.gamma(t), self.eta(t)
        key, k_y, k_v, k_outer, k_cross = rng.split(state["key"], 5)
        outer_batch, cross_batch = oracles.sample_outer(k_outer), oracles.sample_inner(k_cross)

        y_new = y - rho * oracles.grad_inner_y(x, y, oracles.sample_inner(k_y))
        grad_x_f, grad_y_f = oracles.grad_outer(x, y_new, outer_batch)
        v_new = v - rho * (oracles.hvp_inner(x, y_new, v, oracles.sample_inner(k_v)) - grad_y_f)
        fresh = implicit_hypergradient(oracles, x, y_new, v_new, cross_batch, grad_x_f)
        fresh_old = implicit_hypergradient(oracles, x_prev, y, v, cross_batch, oracles.grad_outer_x(x_prev, y, outer_batch))
        d = fresh + (1 - eta) * (t > 0) * (state["d"] - fresh_old)
        return {"x": x - gamma * d, "y": y_new, "v": v_new, "x_prev": x, "d": d, "key": key,
                "t": t + 1, "hypergradient": d}
