"""VRBO: variance-reduced bilevel optimizer, SPIDER directions in a double loop (Yang et al.).

With Φ(x, y; B, B') = ∇_x f(x, y; B') − ∇²_xy g(x, y; B) v(x, y) and v a Neumann sum
η Σ_{k≤Q} Π_{j≤k}(I − η ∇²_yy g(x, y; B_j)) ∇_y f(x, y; B'), one period of q outer iterations:

    (u, w) ← (∇_y g(x, y), Φ(x, y))  on the full batch                 (large-batch restart)
    q times:
        x ← x − α w                                                    (outer step)
        m times:  u ← u + ∇_y g(x, y; B) − ∇_y g(x̄, ȳ; B)
                  w ← w + Φ(x, y; B, B') − Φ(x̄, ȳ; B, B')             (same batches at both points)
                  (x̄, ȳ) ← (x, y);   y ← y − β u                       (inner steps)

where (x̄, ȳ) is the point at which (u, w) were last valid; steps are constant. One solver step
is one period, so that the large-batch restart is part of a fixed-cost pure step.

Oracle cost per step: 1 grad_inner_full, Q hvp_full, 1 cross_full, 1 grad_outer_full, then per
each of the q·m inner iterations 2 grad_inner, 2Q hvp, 2 cross, 2 grad_outer.

Reference: J. Yang, K. Ji, Y. Liang. "Provably faster algorithms for bilevel optimization",
NeurIPS 2021, arXiv 2106.04692.
"""
from dataclasses import dataclass

from benchopt_bilevel import rng
from benchopt_bilevel.hypergradient import hessian_matvec, implicit_hypergradient, sampled_hessian_matvec
from benchopt_bilevel.linalg import neumann, stochastic_neumann
from benchopt_bilevel.solver import IntRange, LogUniform, Solver


@dataclass
class VRBOParams:
    step_inner: float = 0.1  # β, and the Neumann step η
    outer_ratio: float = 1.0  # α = β · outer_ratio
    n_inner_steps: int = 10  # m
    n_neumann_steps: int = 10  # Q
    period: int = 2  # q, outer iterations per large-batch restart

    def __post_init__(self):
        if self.n_inner_steps < 1 or self.n_neumann_steps < 0 or self.period < 1:
            raise ValueError("need n_inner_steps >= 1, n_neumann_steps >= 0 and period >= 1")


class VRBO(Solver):
    name = "vrbo"
    description = "SPIDER directions for y and x, double loop with periodic large-batch restarts"
    reference = "Yang, Ji & Liang, NeurIPS 2021, arXiv 2106.04692"
    family = "double loop, variance reduced"
    stochastic = True
    Params = VRBOParams
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "outer_ratio": LogUniform(1e-2, 10.0),
                    "n_inner_steps": IntRange(1, 20), "period": IntRange(1, 10)}

    def oracle_cost(self, facts):
        p = self.params
        n = p.period * p.n_inner_steps
        return {"grad_inner_full": 1, "hvp_full": p.n_neumann_steps, "cross_full": 1, "grad_outer_full": 1,
                "grad_inner": 2 * n, "hvp": 2 * n * p.n_neumann_steps, "cross": 2 * n, "grad_outer": 2 * n}

    def step(self, oracles, state):
        p = self.params
        beta, alpha = p.step_inner, p.step_inner * p.outer_ratio
        x, y, key = state["x"], state["y"], state["key"]

        u = oracles.grad_inner_y(x, y, None)
        grad_x_f, grad_y_f = oracles.grad_outer(x, y, None)
        v = neumann(hessian_matvec(oracles, x, y, None), grad_y_f, maxiter=p.n_neumann_steps, step=beta)
        w = implicit_hypergradient(oracles, x, y, v, None, grad_x_f)
        hypergradient = w
        x_bar, y_bar = x, y
        for _ in range(p.period):
            x = x - alpha * w
            for _ in range(p.n_inner_steps):
                key, k_inner, k_outer = rng.split(key, 3)
                i, j = oracles.sample_inner(k_inner), oracles.sample_outer(k_outer)
                u = u + oracles.grad_inner_y(x, y, i) - oracles.grad_inner_y(x_bar, y_bar, i)
                grad_x_f, grad_y_f = oracles.grad_outer(x, y, j)
                grad_x_f_bar, grad_y_f_bar = oracles.grad_outer(x_bar, y_bar, j)
                (v, v_bar), key = stochastic_neumann(sampled_hessian_matvec(oracles, [(x, y), (x_bar, y_bar)]),
                                                     [grad_y_f, grad_y_f_bar], key=key, maxiter=p.n_neumann_steps,
                                                     step=beta)
                w = (w + implicit_hypergradient(oracles, x, y, v, i, grad_x_f)
                     - implicit_hypergradient(oracles, x_bar, y_bar, v_bar, i, grad_x_f_bar))
                hypergradient = w
                x_bar, y_bar = x, y
                y = y - beta * u
        return {"x": x, "y": y, "key": key, "hypergradient": hypergradient}
