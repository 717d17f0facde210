"""ITD / RMD: iterative differentiation by reverse-mode unrolling of T inner GD steps.

Forward: y_{t+1} = y_t − α ∇_y g(x, y_t), t < T (from the previous outer step's y_T when
`warm_start`, the dependence of y_0 on x being ignored, as usual). Backward, exactly the
reverse-mode derivative of that loop:

    d ← ∇_x f(x, y_T),  p ← ∇_y f(x, y_T)
    for t = T−1 … 0:  d ← d − α ∇²_xy g(x, y_t) p,   p ← p − α ∇²_yy g(x, y_t) p
    x ← x − γ d

Oracle cost per step (full batch): T grad_inner, T hvp + T cross (one vjp each), 1 grad_outer.

References: D. Maclaurin, D. Duvenaud, R. Adams. "Gradient-based hyperparameter optimization
through reversible learning", ICML 2015; L. Franceschi, M. Donini, P. Frasconi, M. Pontil.
"Forward and reverse gradient-based hyperparameter optimization", ICML 2017, arXiv 1703.01785.
"""
from dataclasses import dataclass

from benchopt_bilevel import inner
from benchopt_bilevel.solver import IntRange, LogUniform, Solver


@dataclass
class ITDParams:
    step_inner: float = 0.1  # α
    step_outer: float = 0.1  # γ
    n_inner_steps: int = 20  # T
    warm_start: bool = True

    def __post_init__(self):
        if self.n_inner_steps < 1:
            raise ValueError("n_inner_steps must be at least 1")


class ITD(Solver):
    name = "itd"
    description = "Reverse-mode differentiation through T unrolled inner gradient steps"
    reference = "Maclaurin et al., ICML 2015; Franceschi et al., ICML 2017"
    family = "unrolled"
    stochastic = False
    Params = ITDParams
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "step_outer": LogUniform(1e-3, 1.0),
                    "n_inner_steps": IntRange(1, 100)}

    def oracle_cost(self, facts):
        t = self.params.n_inner_steps
        return {"grad_inner_full": t, "hvp_full": t, "cross_full": t, "grad_outer_full": 1}

    def init(self, oracles, x, y, key):
        return self.initial_state(x, y, key, y_start=y)

    def step(self, oracles, state):
        return unrolled_step(oracles, state, self.params, n_backward_steps=self.params.n_inner_steps)


def unrolled_step(oracles, state, p, n_backward_steps: int):
    """T inner GD steps, reverse-mode through the last `n_backward_steps` of them (ITD: all of
    them; T-RHG: a truncation), then x ← x − step_outer · d."""
    x = state["x"]
    y0 = state["y"] if p.warm_start else state["y_start"]
    y_untracked = inner.gradient_descent(oracles, x, y0, p.n_inner_steps - n_backward_steps, p.step_inner)
    path = inner.gradient_descent_path(oracles, x, y_untracked, n_backward_steps, p.step_inner)
    d, adjoint = oracles.grad_outer(x, path[-1], None)
    for y_t in reversed(path[:-1]):
        hvp, cross = oracles.hvp_cross_inner(x, y_t, adjoint, None)
        d = d - p.step_inner * cross
        adjoint = adjoint - p.step_inner * hvp
    return {"x": x - p.step_outer * d, "y": path[-1], "y_start": state["y_start"],
            "key": state["key"], "hypergradient": d}
