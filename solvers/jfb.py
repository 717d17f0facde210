"""Jacobian-free backpropagation (JFB): the inverse Hessian in the hypergradient replaced by α I.

    y ← T GD steps y ← y − α ∇_y g(x, y) (warm start)
    v ← α ∇_y f(x, y)
    x ← x − γ (∇_x f(x, y) − ∇²_xy g(x, y) v)

The fixed point y = Φ(x, y), Φ(x, y) = y − α ∇_y g(x, y), is differentiated through one
application of Φ only: ∂y/∂x ≈ ∂_x Φ = −α ∇²_xy g, i.e. the Neumann series of the implicit
adjoint truncated to its first term. No linear solve, no HVP. The estimate is biased: its fixed
points satisfy ∇_x f = α ∇²_xy g ∇_y f, not ∇h = 0; Fung et al. (Thm 3.1) show a descent direction
when f depends on x through y alone and Φ is well conditioned. On the conformance quadratic the
bias is small (relative suboptimality ~1e-6 at its fixed point), so `biased` is not set.

Oracle cost per step (full batch): T grad_inner, 1 grad_outer, 1 cross.

Reference: S. W. Fung, H. Heaton, Q. Li, D. McKenzie, S. Osher, W. Yin. "JFB: Jacobian-Free
Backpropagation for implicit networks", AAAI 2022, arXiv 2103.12803.
"""
from dataclasses import dataclass

from benchopt_bilevel import inner
from benchopt_bilevel.hypergradient import implicit_hypergradient
from benchopt_bilevel.solver import IntRange, LogUniform, Solver


@dataclass
class JFBParams:
    step_inner: float = 0.1  # α: the inner step, also the scale of the identity that replaces the inverse
    step_outer: float = 0.1  # γ
    n_inner_steps: int = 10  # T

    def __post_init__(self):
        if self.n_inner_steps < 1:
            raise ValueError("n_inner_steps must be at least 1")
        if self.step_inner <= 0 or self.step_outer <= 0:
            raise ValueError("step sizes must be positive")


class JFB(Solver):
    name = "jfb"
    description = "Jacobian-free backprop: implicit hypergradient with the inverse Hessian replaced by α I"
    reference = "Fung et al., AAAI 2022, arXiv 2103.12803"
    family = "implicit, approximate"
    stochastic = False
    Params = JFBParams
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "step_outer": LogUniform(1e-3, 1.0),
                    "n_inner_steps": IntRange(1, 50)}

    def oracle_cost(self, facts):
        return {"grad_inner_full": self.params.n_inner_steps, "grad_outer_full": 1, "cross_full": 1}

    def step(self, oracles, state):
        p = self.params
        x = state["x"]
        y = inner.gradient_descent(oracles, x, state["y"], p.n_inner_steps, p.step_inner)
        grad_x_f, grad_y_f = oracles.grad_outer(x, y, None)
        hypergradient = implicit_hypergradient(oracles, x, y, p.step_inner * grad_y_f, None, grad_x_f)
        return {"x": x - p.step_outer * hypergradient, "y": y, "key": state["key"],
                "hypergradient": hypergradient}
