"""FMD: forward-mode differentiation through T inner GD steps, carrying Z_t = dy_t/dx.

Forward, together with the inner steps (Z_0 = 0: the dependence of the start on x is ignored,
as in ITD):

    Z_{t+1} = Z_t − α (∇²_yy g(x, y_t) Z_t + ∇²_yx g(x, y_t)),   y_{t+1} = y_t − α ∇_y g(x, y_t)
    d = ∇_x f(x, y_T) + Z_Tᵀ ∇_y f(x, y_T),   x ← x − γ d

Z_t has one column per outer coordinate: each step costs d_x HVPs (∇²_yy g Z_t e_i) and d_x
forward cross products (∇²_yx g e_i). For the same T the hypergradient equals reverse mode's
(ITD) up to rounding; forward mode pays d_x products per step where reverse mode pays one,
but needs no stored path (memory d_y × d_x instead of T × d_y).

Oracle cost per step (full batch): T grad_inner, T·d_x hvp, T·d_x cross, 1 grad_outer
(d_x = the problem's dim_x, from the facts `oracle_cost` receives).

Reference: L. Franceschi, M. Donini, P. Frasconi, M. Pontil. "Forward and reverse gradient-based
hyperparameter optimization", ICML 2017, arXiv 1703.01785.
"""
from dataclasses import dataclass

import torch

from benchopt_bilevel.linalg import repeat
from benchopt_bilevel.params import ours
from benchopt_bilevel.solver import IntRange, LogUniform, Solver


@dataclass
class FMDParams:
    step_inner: float = ours(0.1, "no reference benchmark solver; the suite's common inner step")  # α
    step_outer: float = ours(0.1, "no reference benchmark solver; as ITD")  # γ
    n_inner_steps: int = ours(20, "as ITD, whose hypergradient FMD computes in forward mode")  # T
    warm_start: bool = ours(True, "y carried across outer steps, as the suite's other unrolled methods")

    def __post_init__(self):
        if self.n_inner_steps < 1:
            raise ValueError("n_inner_steps must be at least 1")


class FMD(Solver):
    name = "fmd"
    description = "Forward-mode differentiation through T unrolled inner gradient steps (d_x products per step)"
    reference = "Franceschi et al., ICML 2017, arXiv 1703.01785"
    family = "unrolled"
    stochastic = False
    deviations = (
        "The inner loop is gradient descent only (no `inner` choice): the forward recursion for Z "
        "is the derivative of a gradient step.",
        "With warm_start, Z restarts at 0 at every outer step (a T-step truncation); the paper's "
        "forward mode either restarts y from a fixed start or, in real-time HO, carries Z along.",
    )
    Params = FMDParams
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "step_outer": LogUniform(1e-3, 1.0),
                    "n_inner_steps": IntRange(1, 100)}

    def oracle_cost(self, facts):
        t, d = self.params.n_inner_steps, facts.dim_x
        return {"grad_inner_full": t, "hvp_full": t * d, "cross_full": t * d, "grad_outer_full": 1}

    def init(self, oracles, x, y, key):
        return self.initial_state(x, y, key, y_start=y)

    def step(self, oracles, state):
        p = self.params
        x = state["x"]
        y = state["y"] if p.warm_start else state["y_start"]
        eye = torch.eye(x.numel(), dtype=x.dtype, device=x.device).reshape(x.numel(), *x.shape)

        def one_step(carry: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
            y, columns = carry  # columns[i] = Z_t e_i; eye's rows taken inside (closed-over views alias)
            columns = torch.stack([z - p.step_inner * (oracles.hvp_inner(x, y, z, None)
                                                       + oracles.cross_t_inner(x, y, e, None))
                                   for z, e in zip(columns.unbind(0), eye.unbind(0))])
            return y - p.step_inner * oracles.grad_inner_y(x, y, None), columns

        # The T inner steps are one loop body (a while_loop in a fast build, whatever T).
        start = (y, torch.zeros((x.numel(), *y.shape), dtype=y.dtype, device=y.device))
        y, columns = repeat(p.n_inner_steps, one_step, start)
        grad_x_f, grad_y_f = oracles.grad_outer(x, y, None)
        d = grad_x_f + torch.stack([torch.sum(z * grad_y_f) for z in columns.unbind(0)]).reshape(x.shape)
        return {"x": x - p.step_outer * d, "y": y, "y_start": state["y_start"],
                "key": state["key"], "hypergradient": d}
