"""LancBiO: a Lanczos basis grown by one vector per outer step approximates A⁻¹b dynamically.

A cycle of m outer steps k = 1..m restarts from the current v (the anchor v̄):

    restart (k = 1):  w = A v̄,  q₁ = (b − w)/‖b − w‖,  empty basis Q and tridiagonal T
    every k:  y ← T steps of gradient descent on g(x, ·);  A = ∇²_yy g(x, y),  b = ∇_y f(x, y)
              one Lanczos step with the current A: α_k = q_kᵀ(A q_k − β_{k−1} q_{k−1}),
              β_k q_{k+1} = A q_k − α_k q_k − β_{k−1} q_{k−1};  T_k tridiagonal (α, β)
              v = v̄ + Q_kᵀ T_k⁻¹ Q_k (b − w)      (a k×k tridiagonal solve)
              x ← x − γ (∇_x f(x, y) − ∇²_xy g(x, y) v)

so the Hessian is met once per outer step (plus once per restart): 1 + 1/m hvp per outer step.
The residual b − w of the anchor corrects for b moving with (x, y) between restarts. A breakdown
(β ≈ 0: the basis already spans A⁻¹(b − w)) freezes the basis until the next restart.

One solver step is one cycle of m outer steps, so that the restart is part of a fixed-cost
pure step rather than a branch on a step counter. The authors' experiments also grow m along
the run (×1.1 every 20 steps up to a maximum); here m is fixed, a tunable parameter.

Oracle cost per step (full batch): m·T grad_inner, m + 1 hvp, m cross, m grad_outer.

Reference: Y. Yang, B. Gao, Y. Yuan. "LancBiO: dynamic Lanczos-aided bilevel optimization via
Krylov subspace", ICLR 2025, arXiv 2404.03331; authors' code UCAS-YanYang/LancBiO.
"""
from dataclasses import dataclass

import torch

from benchopt_bilevel import inner
from benchopt_bilevel.hypergradient import implicit_hypergradient
from benchopt_bilevel.linalg import lanczos_coefficients, lanczos_extend, lanczos_start
from benchopt_bilevel.solver import IntRange, LogUniform, Solver


@dataclass
class LancBiOParams:
    step_inner: float = 0.1  # θ
    step_outer: float = 0.1  # γ
    n_inner_steps: int = 5  # T (the authors' synthetic experiments)
    cycle: int = 10  # m, outer steps (= Lanczos vectors) per restart

    def __post_init__(self):
        if self.n_inner_steps < 0 or self.cycle < 1:
            raise ValueError("need n_inner_steps >= 0 and cycle >= 1")
        if self.step_inner <= 0 or self.step_outer <= 0:
            raise ValueError("step sizes must be positive")


class LancBiO(Solver):
    name = "lancbio"
    description = "Implicit hypergradient from a Lanczos basis grown by one vector per outer step"
    reference = "Yang, Gao, Yuan, ICLR 2025, arXiv 2404.03331"
    family = "implicit, subspace"
    stochastic = False
    Params = LancBiOParams
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "step_outer": LogUniform(1e-3, 1.0),
                    "n_inner_steps": IntRange(1, 20), "cycle": IntRange(1, 50)}

    def oracle_cost(self, facts):
        p = self.params
        return {"grad_inner_full": p.cycle * p.n_inner_steps, "hvp_full": p.cycle + 1,
                "cross_full": p.cycle, "grad_outer_full": p.cycle}

    def init(self, oracles, x, y, key):
        return self.initial_state(x, y, key, v=torch.zeros_like(y))

    def step(self, oracles, state):
        p = self.params
        x, y, anchor = state["x"], state["y"], state["v"]
        v, hypergradient = anchor, state["hypergradient"]
        for k in range(p.cycle):
            y = inner.gradient_descent(oracles, x, y, p.n_inner_steps, p.step_inner)
            grad_x_f, b = oracles.grad_outer(x, y, None)
            if k == 0:  # restart: the anchor's residual with the current Hessian
                w = oracles.hvp_inner(x, y, anchor, None)
                basis = lanczos_start(b - w, p.cycle)
            basis = lanczos_extend(basis, oracles.hvp_inner(x, y, basis["q"].reshape(y.shape), None))
            s = lanczos_coefficients(basis, b - w)
            v = anchor + (basis["Q"].T @ s).reshape(y.shape)
            hypergradient = implicit_hypergradient(oracles, x, y, v, None, grad_x_f)
            x = x - p.step_outer * hypergradient
        return {"x": x, "y": y, "v": v, "key": state["key"], "hypergradient": hypergradient}
