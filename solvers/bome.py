"""BOME: bilevel optimization made easy, a first-order value-function method (Liu et al., 2022).

With q(x, y) = g(x, y) − g(x, ŷ), ŷ ≈ y*(x) from T inner GD steps started at y:

    ∇q = (∇_x g(x, y) − ∇_x g(x, ŷ), ∇_y g(x, y)),   ∇F = (∇_x f(x, y), ∇_y f(x, y))
    λ = max(0, (η‖∇q‖² − ⟨∇F, ∇q⟩) / ‖∇q‖²)
    (x, y) ← (x, y) − ξ (∇F + λ ∇q)

x and y move together; no second-order oracle. Full batch, as in the paper.

Oracle cost per step (full batch): T + 2 grad_inner (ŷ's steps, then g's gradient at (x, y) and
at (x, ŷ)), 1 grad_outer.

Reference: B. Liu, M. Ye, S. Wright, P. Stone, Q. Liu. "BOME! Bilevel optimization made easy:
a simple first-order approach", NeurIPS 2022, arXiv 2209.08709.
"""
from dataclasses import dataclass

import torch

from benchopt_bilevel import inner
from benchopt_bilevel.solver import IntRange, LogUniform, Solver


@dataclass
class BOMEParams:
    step: float = 0.1  # ξ
    step_inner: float = 0.1  # α, the step of ŷ's inner GD
    n_inner_steps: int = 10  # T
    eta: float = 0.5  # η, the control barrier's rate

    def __post_init__(self):
        if self.n_inner_steps < 1:
            raise ValueError("n_inner_steps must be at least 1")
        if self.eta <= 0:
            raise ValueError("eta must be positive")


class BOME(Solver):
    name = "bome"
    description = "First-order value-function method: joint (x, y) step with an adaptive barrier weight"
    reference = "Liu et al., NeurIPS 2022, arXiv 2209.08709"
    family = "first order, value function"
    stochastic = False
    needs_second_order = False
    Params = BOMEParams
    search_space = {"step": LogUniform(1e-3, 1.0), "step_inner": LogUniform(1e-3, 1.0),
                    "n_inner_steps": IntRange(1, 50), "eta": LogUniform(1e-2, 1.0)}

    def oracle_cost(self, facts):
        return {"grad_inner_full": self.params.n_inner_steps + 2, "grad_outer_full": 1}

    def step(self, oracles, state):
        p = self.params
        x, y = state["x"], state["y"]
        y_hat = inner.gradient_descent(oracles, x, y, p.n_inner_steps, p.step_inner)
        grad_x_g, grad_y_g = oracles.grad_inner(x, y, None)
        grad_x_g_hat, _ = oracles.grad_inner(x, y_hat, None)
        grad_x_f, grad_y_f = oracles.grad_outer(x, y, None)
        q_x, q_y = grad_x_g - grad_x_g_hat, grad_y_g
        q_norm2 = torch.sum(q_x * q_x) + torch.sum(q_y * q_y)
        inner_product = torch.sum(grad_x_f * q_x) + torch.sum(grad_y_f * q_y)
        tiny = torch.finfo(q_norm2.dtype).tiny
        lam = torch.clamp((p.eta * q_norm2 - inner_product) / torch.clamp(q_norm2, min=tiny), min=0.0)
        d_x = grad_x_f + lam * q_x
        return {"x": x - p.step * d_x, "y": oracles.project_y(y - p.step * (grad_y_f + lam * q_y)),
                "key": state["key"], "hypergradient": d_x}
