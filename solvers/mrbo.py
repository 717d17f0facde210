"""MRBO: momentum-based recursive bilevel optimizer, STORM directions for y and x (Yang et al.).

With Φ(x, y; B, B') = ∇_x f(x, y; B') − ∇²_xy g(x, y; B) v(x, y), v a stochastic Neumann sum
η Σ_{k≤Q} Π_{j≤k}(I − η ∇²_yy g(x, y; B_j)) ∇_y f(x, y; B') (stocBiO's estimator), each step

    u ← ∇_y g(x, y; B) + (1 − η_t)(u − ∇_y g(x_prev, y_prev; B))
    w ← Φ(x, y; B, B') + (1 − η_t)(w − Φ(x_prev, y_prev; B, B'))      (same batches at both points)
    (x_prev, y_prev) ← (x, y);   y ← y − β_t u;   x ← x − α_t w

with β_t = β/(t+1)^{1/3}, α_t = α/(t+1)^{1/3}, α = β / outer_ratio (the reference benchmark's
convention), η_t = η/(t+1)^{2/3}: the paper's rates (its steps ∝ (m+t)^{-1/3}, momentum weights
∝ step², with an offset m from its analysis; here and in the reference benchmark the offset
is 1). At t = 0 the directions are the plain stochastic estimates, as in the paper. The Neumann
step is β, constant, as in the reference benchmark.

Oracle cost per step: 2 grad_inner, 2Q hvp, 2 cross, 2 grad_outer (every oracle at the current
and the previous point).

Reference: J. Yang, K. Ji, Y. Liang. "Provably faster algorithms for bilevel optimization",
NeurIPS 2021, arXiv 2106.04692.
"""
from dataclasses import dataclass

import torch

from benchopt_bilevel import rng
from benchopt_bilevel.hypergradient import implicit_hypergradient, sampled_hessian_matvec
from benchopt_bilevel.linalg import stochastic_neumann
from benchopt_bilevel.params import paper, reference
from benchopt_bilevel.schedules import make_schedule
from benchopt_bilevel.solver import IntRange, LogUniform, Solver


@dataclass
class MRBOParams:
    step_inner: float = reference(0.1, "solvers/mrbo.py: step_size")  # β, and the Neumann step
    outer_ratio: float = reference(1.0, "solvers/mrbo.py: outer_ratio")  # α = β / outer_ratio
    momentum: float = reference(0.5, "solvers/mrbo.py: eta")  # η: weight of the fresh estimate
    n_neumann_steps: int = reference(10, "solvers/mrbo.py: n_shia_steps")  # Q
    decay_step: float = paper(1 / 3, "Theorem 1, steps ∝ (m+t)^(-1/3) (number from memory)")
    decay_momentum: float = paper(2 / 3, "Theorem 1, momentum weights ∝ step² (number from memory)")

    def __post_init__(self):
        if self.n_neumann_steps < 0 or not 0 < self.momentum <= 1:
            raise ValueError("need n_neumann_steps >= 0 and 0 < momentum <= 1")


def storm(direction, fresh, fresh_old, weight, first):
    """STORM: fresh + (1 − η)(d − fresh_old); the plain fresh estimate at the first step."""
    return fresh + (1 - weight) * (~first) * (direction - fresh_old)



class MRBO(Solver):
    name = "mrbo"
    description = "STORM momentum on the inner gradient and on a Neumann hypergradient estimate"
    reference = "Yang, Ji & Liang, NeurIPS 2021, arXiv 2106.04692"
    family = "single loop, variance reduced"
    stochastic = True
    deviations = (
        "Schedules are divided by (t+1)^power, as in the reference benchmark, not by the paper's "
        "(m+t)^power with an offset m from its analysis.",
        "At t = 0 the directions are plain stochastic estimates (the paper's initialization); the "
        "reference benchmark's first correction is taken against the point x = 0, y = 0.",
    )
    reference_name = "MRBO"
    reference_params = {"step_size": "step_inner", "outer_ratio": "outer_ratio", "eta": "momentum",
                        "n_shia_steps": "n_neumann_steps"}
    Params = MRBOParams
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "outer_ratio": LogUniform(1e-2, 1e2),
                    "momentum": LogUniform(0.05, 1.0), "n_neumann_steps": IntRange(1, 30)}

    def __init__(self, params=None, **overrides):
        super().__init__(params, **overrides)
        p = self.params
        self.beta = make_schedule(p.step_inner, p.decay_step)
        self.alpha = make_schedule(p.step_inner / p.outer_ratio, p.decay_step)
        self.eta = make_schedule(p.momentum, p.decay_momentum)

    def oracle_cost(self, facts):
        return {"grad_inner": 2, "hvp": 2 * self.params.n_neumann_steps, "cross": 2, "grad_outer": 2}

    def init(self, oracles, x, y, key):
        return self.initial_state(x, y, key, x_prev=x, y_prev=y, u=torch.zeros_like(y), w=torch.zeros_like(x),
                                  t=self.counter(x))

    def inverse_estimates(self, oracles, points, rhs, key):
        """v at every point, sharing batches (MRBO: the truncated Neumann sum)."""
        p = self.params
        return stochastic_neumann(sampled_hessian_matvec(oracles, points), rhs, key=key, maxiter=p.n_neumann_steps,
                                  step=p.step_inner)

    def step(self, oracles, state):
        t, x, y, x_prev, y_prev = state["t"], state["x"], state["y"], state["x_prev"], state["y_prev"]
        beta, alpha, eta = self.beta(t), self.alpha(t), self.eta(t)
        first = t == 0
        key, k_inner, k_outer = rng.split(state["key"], 3)
        i, j = oracles.sample_inner(k_inner), oracles.sample_outer(k_outer)

        u = storm(state["u"], oracles.grad_inner_y(x, y, i), oracles.grad_inner_y(x_prev, y_prev, i), eta, first)
        grad_x_f, grad_y_f = oracles.grad_outer(x, y, j)
        grad_x_f_old, grad_y_f_old = oracles.grad_outer(x_prev, y_prev, j)
        (v, v_old), key = self.inverse_estimates(oracles, [(x, y), (x_prev, y_prev)], [grad_y_f, grad_y_f_old], key)
        phi = implicit_hypergradient(oracles, x, y, v, i, grad_x_f)
        phi_old = implicit_hypergradient(oracles, x_prev, y_prev, v_old, i, grad_x_f_old)
        w = storm(state["w"], phi, phi_old, eta, first)
        return {"x": x - alpha * w, "y": y - beta * u, "x_prev": x, "y_prev": y, "u": u, "w": w,
                "key": key, "t": t + 1, "hypergradient": w}
