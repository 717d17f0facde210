"""SubBiO: the linear system of the hypergradient solved over a 2-dim subspace each outer step.

    y ← T steps of gradient descent on g(x, ·) (warm start);  A = ∇²_yy g(x, y),  b = ∇_y f(x, y)
    S = span{b, (I − ηA) v}   (orthonormal basis W by Gram–Schmidt; η = the inner step)
    v ← argmin_{w ∈ S} ½ wᵀAw − bᵀw = Wᵀ (W A Wᵀ)⁻¹ W b      (a 2×2 system)
    x ← x − γ (∇_x f(x, y) − ∇²_xy g(x, y) v)

(I − ηA) v is the previous solution pushed through the Jacobian of one inner gradient step;
the subspace also holds the gradient step v − η(Av − b), so v is never worse than one step
of gradient descent on the linear system from the previous v. Full batch, deterministic.

Oracle cost per step (full batch): T grad_inner, 3 hvp (A v, then A on the two basis
vectors), 1 cross, 1 grad_outer.

Reference: Y. Yang, B. Gao, Y. Yuan. "LancBiO: dynamic Lanczos-aided bilevel optimization via
Krylov subspace", ICLR 2025, arXiv 2404.03331 (SubBiO, its 2-dim subspace method); authors'
code UCAS-YanYang/LancBiO.
"""
from dataclasses import dataclass

import torch

from benchopt_bilevel import inner
from benchopt_bilevel.hypergradient import implicit_hypergradient
from benchopt_bilevel.linalg import galerkin_coefficients, orthonormal_rows
from benchopt_bilevel.solver import IntRange, LogUniform, Solver


@dataclass
class SubBiOParams:
    step_inner: float = 0.1  # θ, also the η of the subspace direction (I − ηA) v
    step_outer: float = 0.1  # γ
    n_inner_steps: int = 5  # T (the authors' synthetic experiments)

    def __post_init__(self):
        if self.n_inner_steps < 0:
            raise ValueError(f"n_inner_steps must be >= 0, got {self.n_inner_steps}")
        if self.step_inner <= 0 or self.step_outer <= 0:
            raise ValueError("step sizes must be positive")


class SubBiO(Solver):
    name = "subbio"
    description = "Implicit hypergradient, linear system solved over span{∇_y f, (I − ηA) v} each step"
    reference = "Yang, Gao, Yuan, ICLR 2025, arXiv 2404.03331"
    family = "implicit, subspace"
    stochastic = False
    Params = SubBiOParams
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "step_outer": LogUniform(1e-3, 1.0),
                    "n_inner_steps": IntRange(1, 20)}

    def oracle_cost(self, facts):
        return {"grad_inner_full": self.params.n_inner_steps, "hvp_full": 3, "cross_full": 1,
                "grad_outer_full": 1}

    def init(self, oracles, x, y, key):
        return self.initial_state(x, y, key, v=torch.zeros_like(y))

    def step(self, oracles, state):
        p = self.params
        x, v = state["x"], state["v"]
        y = inner.gradient_descent(oracles, x, state["y"], p.n_inner_steps, p.step_inner)
        grad_x_f, b = oracles.grad_outer(x, y, None)

        def hvp(w):
            return oracles.hvp_inner(x, y, w.reshape(y.shape), None).reshape(-1)

        direction = v.reshape(-1) - p.step_inner * hvp(v)
        W = orthonormal_rows(torch.stack([b.reshape(-1), direction]))
        AW = torch.stack([hvp(W[0]), hvp(W[1])])
        v = (W.T @ galerkin_coefficients(W, AW, b)).reshape(y.shape)
        hypergradient = implicit_hypergradient(oracles, x, y, v, None, grad_x_f)
        return {"x": x - p.step_outer * hypergradient, "y": y, "v": v, "key": state["key"],
                "hypergradient": hypergradient}
