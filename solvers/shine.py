"""SHINE: the inner problem is solved by L-BFGS and its inverse-Hessian estimate gives v, no extra solve.

    y ← T L-BFGS steps y ← y − H ∇_y g(x, y) (warm start; the history of pairs kept across steps)
    v ← H ∇_y f(x, y)                         (the same H: SHINE's shared inverse estimate)
    [opa] u = t H ∇_y f;  H ← H updated with the pair (u, ∇_y g(x, y + u) − ∇_y g(x, y));  v ← H ∇_y f
    v ← `refine` CG iterations on ∇²_yy g v = ∇_y f warm-started from that v (SHINE-refine; 0: none)
    x ← x − γ (∇_x f(x, y) − ∇²_xy g(x, y) v)

H is the two-loop L-BFGS estimate (benchopt_bilevel.quasi_newton) with H₀ = γ_k I scaled by the
newest pair, or `initial_inverse_scale`·I while the history is empty. The history persists across
outer steps: on a problem whose ∇²_yy g depends little on x, older pairs still describe its
curvature. Inner steps take the unit quasi-Newton step (no line search: a fixed cost per step),
so SHINE has no inner step size: before any pair is stored, a step is −initial_inverse_scale·∇_y g. `opa`
is the paper's outer-problem awareness: one extra secant pair along the current estimate of v,
so that H is accurate in the direction the hypergradient needs (its Theorem 3), for two extra
gradients; t = `opa_step`.

Oracle cost per step (full batch): T grad_inner (T + 2 with opa), 1 grad_outer, 1 cross, and
refine + 1 hvp when refine > 0 (a warm-started CG spends one on its first residual).

Reference: Z. Ramzi, F. Mannel, S. Bai, J.-L. Starck, P. Ciuciu, T. Moreau. "SHINE: SHaring the
INverse Estimate from the forward pass for bi-level optimization and implicit models", ICLR 2022,
arXiv 2106.00553.
"""
from dataclasses import dataclass

from benchopt_bilevel.hypergradient import hessian_matvec, implicit_hypergradient
from benchopt_bilevel.linalg import conjugate_gradient
from benchopt_bilevel.quasi_newton import lbfgs_apply, lbfgs_init, lbfgs_minimize, lbfgs_update
from benchopt_bilevel.solver import Choice, IntRange, LogUniform, Solver


@dataclass
class SHINEParams:
    initial_inverse_scale: float = 0.1  # H₀ = initial_inverse_scale · I before any curvature pair is stored
    step_outer: float = 0.1  # γ
    n_inner_steps: int = 10  # T
    memory: int = 10  # L-BFGS pairs kept (the default of SciPy's L-BFGS-B)
    refine: int = 0  # extra CG iterations from the shared estimate (SHINE-refine)
    opa: bool = False  # outer-problem awareness: one extra secant pair along v
    opa_step: float = 1.0  # t: length of the OPA secant step relative to the current v

    def __post_init__(self):
        if self.n_inner_steps < 1 or self.memory < 1 or self.refine < 0:
            raise ValueError("need n_inner_steps >= 1, memory >= 1 and refine >= 0")
        if self.initial_inverse_scale <= 0 or self.step_outer <= 0 or self.opa_step <= 0:
            raise ValueError("initial_inverse_scale and the step sizes must be positive")


class SHINE(Solver):
    name = "shine"
    description = "L-BFGS inner solve whose inverse-Hessian estimate also gives the adjoint, full batch"
    reference = "Ramzi et al., ICLR 2022, arXiv 2106.00553"
    family = "implicit, shared inverse"
    stochastic = False
    Params = SHINEParams
    search_space = {"initial_inverse_scale": LogUniform(1e-3, 1.0), "step_outer": LogUniform(1e-3, 1.0),
                    "n_inner_steps": IntRange(1, 50), "memory": IntRange(1, 30), "refine": IntRange(0, 10),
                    "opa": Choice((False, True))}

    def oracle_cost(self, facts):
        p = self.params
        cost = {"grad_inner_full": p.n_inner_steps + (2 if p.opa else 0), "grad_outer_full": 1, "cross_full": 1}
        if p.refine > 0:
            cost["hvp_full"] = p.refine + 1
        return cost

    def init(self, oracles, x, y, key):
        history = lbfgs_init(y, self.params.memory)
        return self.initial_state(x, y, key, **{"history_" + k: v for k, v in history.items()})

    def step(self, oracles, state):
        p = self.params
        x = state["x"]
        history = {k[len("history_"):]: v for k, v in state.items() if k.startswith("history_")}
        y, history = lbfgs_minimize(lambda y_: oracles.grad_inner_y(x, y_, None), state["y"], history,
                                    p.n_inner_steps, h0=p.initial_inverse_scale)
        grad_x_f, grad_y_f = oracles.grad_outer(x, y, None)
        v = lbfgs_apply(history, grad_y_f, h0=p.initial_inverse_scale)
        if p.opa:
            u = p.opa_step * v
            grad_change = oracles.grad_inner_y(x, y + u, None) - oracles.grad_inner_y(x, y, None)
            history = lbfgs_update(history, u, grad_change, point=y)
            v = lbfgs_apply(history, grad_y_f, h0=p.initial_inverse_scale)
        if p.refine > 0:
            v = conjugate_gradient(hessian_matvec(oracles, x, y, None), grad_y_f, v0=v, maxiter=p.refine)
        hypergradient = implicit_hypergradient(oracles, x, y, v, None, grad_x_f)
        return {"x": x - p.step_outer * hypergradient, "y": y, "key": state["key"],
                "hypergradient": hypergradient, **{"history_" + k: v_ for k, v_ in history.items()}}
