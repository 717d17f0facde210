"""SHINE: the inner problem is solved by L-BFGS and its inverse-Hessian estimate gives v, no extra solve.

    history ← empty (history="reset"; the default without OPA: L-BFGS restarts every outer step)
    y ← T L-BFGS steps y ← y − t H ∇_y g(x, y) (warm start), t = 1 or backtracked (line_search)
    v ← H ∇_y f(x, y)                         (the same H: SHINE's shared inverse estimate)
    [opa] u = t H ∇_y f;  H ← H updated with the pair (u, ∇_y g(x, y + u) − ∇_y g(x, y));  v ← H ∇_y f
    v ← `refine` CG iterations on ∇²_yy g v = ∇_y f warm-started from that v (SHINE-refine; 0: none)
    x ← x − γ (∇_x f(x, y) − ∇²_xy g(x, y) v)

H is the two-loop L-BFGS estimate (benchopt_bilevel.quasi_newton) with H₀ = γ_k I scaled by the
newest pair, or `initial_inverse_scale`·I while the history is empty. history="reset" empties
it at every outer step, as the authors' HOAG code restarts L-BFGS-B for each inner solve: every
pair then describes ∇²_yy g at the current x. history="shared" keeps the pairs across outer steps
(the authors' pure-Python L-BFGS warm-restarts its lists in their OPA runs): more pairs, but
those of earlier x describe another Hessian unless ∇²_yy g does not depend on x (the
quadratics). "auto" (default) is reset for plain SHINE and shared with OPA, as the authors ran them. `line_search` > 0 backtracks the quasi-Newton step (t = 1, ½, ¼, ...: the first
that meets Armijo's condition with c₁ = 1e-4, the authors' value, else the smallest), at a fixed
`line_search` values of g per inner step (and one at the start); 0 takes the unit step (no line search). `opa` is the
paper's outer-problem awareness: one extra secant pair along the current estimate of v, so that
H is accurate in the direction the hypergradient needs (its Theorem 3), for two extra gradients;
t = `opa_step`.

Oracle cost per step (full batch): T grad_inner (T + 2 with opa), T·line_search + 1 value_inner
when line_search > 0,
1 grad_outer, 1 cross, and refine + 1 hvp when refine > 0 (a warm-started CG spends one on its
first residual).

Reference: Z. Ramzi, F. Mannel, S. Bai, J.-L. Starck, P. Ciuciu, T. Moreau. "SHINE: SHaring the
INverse Estimate from the forward pass for bi-level optimization and implicit models", ICLR 2022,
arXiv 2106.00553; authors' code zaccharieramzi/hoag (branch shine: hoag/hoag.py, hoag/lbfgs.py).
"""
from dataclasses import dataclass

from benchopt_bilevel.hypergradient import hessian_matvec, implicit_hypergradient
from benchopt_bilevel.linalg import conjugate_gradient
from benchopt_bilevel.params import ours, paper
from benchopt_bilevel.quasi_newton import lbfgs_apply, lbfgs_init, lbfgs_minimize, lbfgs_update
from benchopt_bilevel.solver import Choice, IntRange, LogUniform, Solver

HISTORIES = ("auto", "reset", "shared")
HOAG = "authors' code, hoag/hoag.py (branch shine)"


@dataclass
class SHINEParams:
    # H₀ = initial_inverse_scale · I before any curvature pair is stored
    initial_inverse_scale: float = ours(0.1, "the first inner step is a gradient step of 0.1, as the AID solvers'")
    step_outer: float = ours(0.1, "HOAG adapts its outer step; a constant one, as the AID solvers")
    n_inner_steps: int = ours(10, "HOAG solves to a decreasing tolerance; a fixed count (fixed-cost step)")
    memory: int = paper(10, HOAG + ": maxcor = 10")  # L-BFGS pairs kept
    # auto: reset for plain SHINE (hoag.py restarts L-BFGS-B, task START, for every inner solve),
    # shared with OPA (its runs warm-restart the pairs: lbfgs.py, main_plots_opa_df.py)
    history: str = paper("auto", HOAG + ": reset per inner solve; pairs kept in the OPA runs")
    line_search: int = ours(0, "unit steps: a fixed cost; the authors' Wolfe search takes up to maxls = 20")
    refine: int = paper(0, "§3: plain SHINE; refine > 0 is SHINE-refine")  # extra CG iterations
    opa: bool = paper(False, "§3: plain SHINE; OPA is the outer-problem-aware variant")
    opa_step: float = ours(1.0, "the authors scale the OPA step to the last inner step's length")

    def __post_init__(self):
        if self.n_inner_steps < 1 or self.memory < 1 or self.refine < 0 or self.line_search < 0:
            raise ValueError("need n_inner_steps >= 1, memory >= 1, refine >= 0 and line_search >= 0")
        if self.initial_inverse_scale <= 0 or self.step_outer <= 0 or self.opa_step <= 0:
            raise ValueError("initial_inverse_scale and the step sizes must be positive")
        if self.history not in HISTORIES:
            raise ValueError(f"history must be one of {', '.join(HISTORIES)}, got {self.history!r}")


class SHINE(Solver):
    name = "shine"
    description = "L-BFGS inner solve whose inverse-Hessian estimate also gives the adjoint, full batch"
    reference = "Ramzi et al., ICLR 2022, arXiv 2106.00553"
    family = "implicit, shared inverse"
    stochastic = False
    deviations = (
        "The inner solve runs a fixed number of L-BFGS steps with unit steps by default (HOAG "
        "solves to a decreasing tolerance with a Wolfe line search); line_search > 0 backtracks "
        "with Armijo's condition at a fixed number of trials.",
        "OPA's secant step is opa_step · v (the authors scale H ∇_y f to the last inner step's "
        "length) and is taken at every outer step.",
        "No inner optimizer choice: the inner solver is the L-BFGS whose inverse estimate is the "
        "method.",
    )
    Params = SHINEParams
    # memory sets the L-BFGS history's shape; line_search and refine choose branches (> 0) and
    # size unrolled loops; lbfgs_minimize branches on n_inner_steps < 1 (its zero-trip guard):
    # constants of a fast build.
    static_params = ("memory", "line_search", "refine")
    search_space = {"initial_inverse_scale": LogUniform(1e-3, 1.0), "step_outer": LogUniform(1e-3, 1.0),
                    "n_inner_steps": IntRange(1, 50), "memory": IntRange(1, 30), "refine": IntRange(0, 10),
                    "opa": Choice((False, True)), "history": Choice(HISTORIES)}

    @property
    def history_mode(self) -> str:
        """"reset" or "shared", "auto" resolved as the authors run it."""
        if self.params.history == "auto":
            return "shared" if self.params.opa else "reset"
        return self.params.history

    def oracle_cost(self, facts):
        p = self.params
        cost = {"grad_inner_full": p.n_inner_steps + (2 if p.opa else 0), "grad_outer_full": 1, "cross_full": 1}
        if p.line_search > 0:
            cost["value_inner_full"] = p.n_inner_steps * p.line_search + 1
        if p.refine > 0:
            cost["hvp_full"] = p.refine + 1
        return cost

    def init(self, oracles, x, y, key):
        if self.history_mode == "reset":
            return self.initial_state(x, y, key)
        history = lbfgs_init(y, self.params.memory)
        return self.initial_state(x, y, key, **{"history_" + k: v for k, v in history.items()})

    def step(self, oracles, state):
        p = self.params
        x = state["x"]
        if self.history_mode == "reset":  # a Python choice: every pair will be of this x
            history = lbfgs_init(state["y"], p.memory)
        else:
            history = {k[len("history_"):]: v for k, v in state.items() if k.startswith("history_")}
        value = (lambda y_: oracles.value_inner(x, y_, None)) if p.line_search > 0 else None
        y, history = lbfgs_minimize(lambda y_: oracles.grad_inner_y(x, y_, None), state["y"], history,
                                    p.n_inner_steps, h0=p.initial_inverse_scale,
                                    value_fn=value, line_search=p.line_search)
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
        kept = {} if self.history_mode == "reset" else {"history_" + k: v_ for k, v_ in history.items()}
        return {"x": x - p.step_outer * hypergradient, "y": y, "key": state["key"],
                "hypergradient": hypergradient, **kept}
