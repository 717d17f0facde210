"""T-RHG: truncated reverse-mode hypergradient, backpropagating through the last K of T steps.

Forward: y_{t+1} = y_t − α ∇_y g(x, y_t), t < T (from the previous outer step's y_T when
`warm_start`). Backward through the last K steps only (K = T is ITD):

    d ← ∇_x f(x, y_T),  p ← ∇_y f(x, y_T)
    for t = T−1 … T−K:  d ← d − α ∇²_xy g(x, y_t) p,   p ← p − α ∇²_yy g(x, y_t) p
    x ← x − γ d

Only the last K iterates are stored (memory K instead of T). With a strongly convex inner
problem the truncation bias decays geometrically in K, like (1 − αμ)^K.

`inner` chooses the inner steps as for ITD: gradient descent, or full-batch Runge–Kutta–Chebyshev
steps (backward through the stages of the last K steps); AI-SARAH is rejected (see itd.py).

Oracle cost per step (full batch): T grad_inner, K hvp + K cross (one vjp each), 1 grad_outer
(each times s stages with `inner="srkc"`).

Reference: A. Shaban, C.-A. Cheng, N. Hatch, B. Boots. "Truncated back-propagation for bilevel
optimization", AISTATS 2019, arXiv 1810.10667.
"""
from dataclasses import dataclass

from benchopt_bilevel import stochastic_inner
from benchopt_bilevel.params import ours, paper
from benchopt_bilevel.solver import IntRange, LogUniform, Solver

from .itd import REJECTED, UNROLLABLE, unrolled_cost, unrolled_step


@dataclass
class TRHGParams:
    step_inner: float = ours(0.1, "as ITD; stable here for L ≤ 20")  # α
    step_outer: float = ours(0.1, "as ITD")  # γ
    n_inner_steps: int = ours(10, "as ITD (the reference's jaxopt_ITD default)")  # T
    n_backward_steps: int = ours(5, "half of T; the paper studies K from 1 to T")  # K ≤ T
    warm_start: bool = ours(True, "as ITD")
    inner: str = paper("sgd", "gradient descent, the paper's inner dynamics")

    def __post_init__(self):
        if not 1 <= self.n_backward_steps <= self.n_inner_steps:
            raise ValueError(f"need 1 <= n_backward_steps <= n_inner_steps, got "
                             f"{self.n_backward_steps} and {self.n_inner_steps}")


class TRHG(Solver):
    name = "t-rhg"
    description = "Reverse-mode differentiation through the last K of T unrolled inner gradient steps"
    reference = "Shaban et al., AISTATS 2019, arXiv 1810.10667"
    family = "unrolled"
    stochastic = False
    Params = TRHGParams
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "step_outer": LogUniform(1e-3, 1.0),
                    "n_inner_steps": IntRange(1, 100), "n_backward_steps": IntRange(1, 100)}
    deviations = (REJECTED,)

    def __init__(self, params=None, **overrides) -> None:
        super().__init__(params, **overrides)
        stochastic_inner.validate(self.params.inner, self.name, UNROLLABLE)

    def oracle_cost(self, facts):
        p = self.params
        return unrolled_cost(p.inner, p.n_inner_steps, p.n_backward_steps)

    def init(self, oracles, x, y, key):
        return self.initial_state(x, y, key, y_start=y)

    def step(self, oracles, state):
        return unrolled_step(oracles, state, self.params, n_backward_steps=self.params.n_backward_steps)
