"""SubBiO: the linear system of the hypergradient solved over a 2-dim subspace each outer step.

Outer step k = 1, 2, ... (one solver step), with A = ∇²_yy g(x, y) and b = ∇_y f(x, y):

    θ_k = max(θ_min, θ / k^a),  λ_k = max(λ_min, λ / k^b)        (a = b = 0: constant steps)
    y ← T steps y ← y − θ_k ∇_y g(x, y) (warm start)
    S = span{b, (I − ηA) v}   (orthonormal basis W by Gram–Schmidt)
    v ← argmin_{w ∈ S} ½ wᵀAw − bᵀw = Wᵀ (W A Wᵀ)⁻¹ W b      (a 2×2 system)
    x ← x − λ_k (∇_x f(x, y) − ∇²_xy g(x, y) v)

(I − ηA) v is the previous solution pushed through the Jacobian of one inner gradient step;
the subspace also holds the gradient step v − η(Av − b), so v is never worse than one step
of gradient descent on the linear system from the previous v. η is a parameter of its own; by
default the initial inner step θ, as in the authors' code. Full batch, deterministic.

Oracle cost per step (full batch): T grad_inner (inner="sgd"; otherwise that inner optimizer's
cost), 3 hvp (A v, then A on the two basis vectors), 1 cross, 1 grad_outer.

Reference: Y. Yang, B. Gao, Y. Yuan. "LancBiO: dynamic Lanczos-aided bilevel optimization via
Krylov subspace", ICLR 2025, arXiv 2404.03331 (SubBiO, its 2-dim subspace method); authors'
code UCAS-YanYang/LancBiO (Code/SyntheticProblem: solvers/SubBiO.py and main.py).
"""
import math
from dataclasses import dataclass

import torch

from benchopt_bilevel import inner as inner_lib
from benchopt_bilevel import stochastic_inner
from benchopt_bilevel.errors import UserError
from benchopt_bilevel.hypergradient import implicit_hypergradient
from benchopt_bilevel.linalg import galerkin_coefficients, orthonormal_rows
from benchopt_bilevel.params import ours, paper
from benchopt_bilevel.solver import IntRange, LogUniform, Solver

AUTHORS = "authors' code, Code/SyntheticProblem/main.py"


@dataclass
class SubBiOParams:
    step_inner: float = ours(0.1, "the authors' θ is tuned per problem (1e-5 synthetic, 0.1 hyper-cleaning)")
    step_outer: float = ours(0.1, "the authors' λ is tuned per problem (1 synthetic, 500 hyper-cleaning)")
    eta: float | None = paper(None, "authors' code, solvers/SubBiO.py: η = the initial inner step θ (None)")
    decay_inner: float = paper(0.0, AUTHORS + ": a = 0, θ_k = θ / k^a")
    decay_outer: float = paper(0.0, AUTHORS + ": b = 0, λ_k = λ / k^b")
    min_step_inner: float = paper(0.0, AUTHORS + ": min_theta")
    min_step_outer: float = paper(0.0, AUTHORS + ": min_lam")
    n_inner_steps: int = paper(5, AUTHORS + ": T = 5")
    inner: str = paper("sgd", "Alg. 1: gradient descent on the inner problem")

    def __post_init__(self):
        if self.n_inner_steps < 0:
            raise ValueError(f"n_inner_steps must be >= 0, got {self.n_inner_steps}")
        if self.step_inner <= 0 or self.step_outer <= 0 or (self.eta is not None and self.eta <= 0):
            raise ValueError("step sizes and eta must be positive")
        if min(self.decay_inner, self.decay_outer, self.min_step_inner, self.min_step_outer) < 0:
            raise ValueError("decay exponents and minimum steps must be >= 0")


def decayed(step: float, power: float, minimum: float, k: torch.Tensor) -> torch.Tensor:
    """max(minimum, step / k^power), k = 1, 2, ... (the authors' schedule)."""
    return torch.clamp(step / k ** power, min=minimum)


class SubBiO(Solver):
    name = "subbio"
    description = "Implicit hypergradient, linear system solved over span{∇_y f, (I − ηA) v} each step"
    reference = "Yang, Gao, Yuan, ICLR 2025, arXiv 2404.03331"
    family = "implicit, subspace"
    stochastic = False
    deviations = (
        "The subspace basis is orthonormalized before the 2×2 solve (the authors solve with the "
        "raw vectors b and (I − ηA) v): the same v in exact arithmetic, better conditioned.",
    )
    Params = SubBiOParams
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "step_outer": LogUniform(1e-3, 1.0),
                    "eta": LogUniform(1e-3, 1.0), "n_inner_steps": IntRange(1, 20)}

    def __init__(self, params=None, **overrides):
        super().__init__(params, **overrides)
        if self.params.inner not in stochastic_inner.INNER_OPTIMIZERS:
            raise UserError(f"subbio: unknown inner optimizer {self.params.inner!r}; choose one of "
                            f"{', '.join(stochastic_inner.INNER_OPTIMIZERS)}")

    def oracle_cost(self, facts):
        p = self.params
        return {**inner_cost(p.inner, p.n_inner_steps), "hvp_full": 3, "cross_full": 1, "grad_outer_full": 1}

    def init(self, oracles, x, y, key):
        return self.initial_state(x, y, key, t=self.counter(x), v=torch.zeros_like(y))

    def step(self, oracles, state):
        p = self.params
        x, v, key, k = state["x"], state["v"], state["key"], state["t"] + 1
        theta = decayed(p.step_inner, p.decay_inner, p.min_step_inner, k)
        lam = decayed(p.step_outer, p.decay_outer, p.min_step_outer, k)
        y, key = inner_solve(oracles, x, state["y"], key, p.inner, p.n_inner_steps, theta)
        grad_x_f, b = oracles.grad_outer(x, y, None)

        def hvp(w):
            return oracles.hvp_inner(x, y, w.reshape(y.shape), None).reshape(-1)

        eta = p.step_inner if p.eta is None else p.eta
        direction = v.reshape(-1) - eta * hvp(v)
        W = orthonormal_rows(torch.stack([b.reshape(-1), direction]))
        AW = torch.stack([hvp(W[0]), hvp(W[1])])
        v = (W.T @ galerkin_coefficients(W, AW, b)).reshape(y.shape)
        hypergradient = implicit_hypergradient(oracles, x, y, v, None, grad_x_f)
        return {"x": x - lam * hypergradient, "y": y, "v": v, "t": k, "key": key,
                "hypergradient": hypergradient}


def inner_solve(oracles, x, y, key, name: str, n_steps: int, step):
    """The inner loop: "sgd" is the paper's full-batch gradient descent; the other inner
    optimizers draw their mini-batches from `key` (AI-SARAH without a step, as its paper)."""
    if name == "sgd":
        return inner_lib.gradient_descent(oracles, x, y, n_steps, step), key
    step = math.inf if name == "ai_sarah" else step
    return stochastic_inner.INNER_OPTIMIZERS[name](oracles, x, y, key, n_steps, step)


def inner_cost(name: str, n_steps: int) -> dict[str, float]:
    """The oracle calls of `inner_solve`: full-batch gradients for "sgd"."""
    if name == "sgd":
        return {"grad_inner_full": n_steps}
    return stochastic_inner.oracle_cost(name, n_steps)
