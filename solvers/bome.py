"""BOME: bilevel optimization made easy, a first-order value-function method (Liu et al., 2022).

With q(x, y) = g(x, y) − g(x, ŷ), ŷ ≈ y*(x) from T inner GD steps started at y:

    ∇q = (∇_x g(x, y) − ∇_x g(x, ŷ), ∇_y g(x, y)),   ∇F = (∇_x f(x, y), ∇_y f(x, y))
    λ = max(0, (φ − ⟨∇F, ∇q⟩) / ‖∇q‖²),   φ = η ‖∇q‖²
    y ← y − α (∇_y f + λ ∇_y q),   x ← x − (α / r) (∇_x f + λ ∇_x q)

x and y move together; no second-order oracle. Full batch, as in the paper. r = outer_ratio
(r = 1: the paper's joint step on (x, y)).

Oracle cost per step (full batch): T grad_inner for ŷ (inner="sgd"; otherwise that inner
optimizer's cost), then 2 grad_inner (g's gradient at (x, y) and at (x, ŷ)), 1 grad_outer.

Reference: B. Liu, M. Ye, S. Wright, P. Stone, Q. Liu. "BOME! Bilevel optimization made easy:
a simple first-order approach", NeurIPS 2022, arXiv 2209.08709; authors' code Cranial-XIX/BOME.
"""
import math
from dataclasses import dataclass

import torch

from benchopt_bilevel import inner as inner_lib
from benchopt_bilevel import stochastic_inner
from benchopt_bilevel.errors import UserError
from benchopt_bilevel.params import paper, reference
from benchopt_bilevel.solver import IntRange, LogUniform, Solver

Tensor = torch.Tensor


@dataclass
class BOMEParams:
    step_inner: float = reference(0.1, "solvers/bome.py: step_size")  # α: ŷ's and y's step
    outer_ratio: float = reference(1.0, "solvers/bome.py: outer_ratio")  # x's step α / r
    n_inner_steps: int = paper(10, "§5: T = 10 by default (section from memory; authors' toy/toy_convergence.py: k = 10)")  # T
    eta: float = paper(0.5, "§5: η = 0.5 by default (section from memory; authors' toy/toy_convergence.py)")  # η
    inner: str = paper("sgd", "Alg. 1: T gradient descent steps for ŷ")

    def __post_init__(self):
        if self.n_inner_steps < 1:
            raise ValueError("n_inner_steps must be at least 1")
        if self.eta <= 0 or self.step_inner <= 0 or self.outer_ratio <= 0:
            raise ValueError("need eta, step_inner and outer_ratio positive")


def inner_solve(oracles, x: Tensor, y: Tensor, key: Tensor, name: str, n_steps: int, step: float):
    """ŷ: "sgd" is the paper's full-batch gradient descent; the other inner optimizers draw their
    mini-batches from `key` (AI-SARAH without a step, as its paper)."""
    if name == "sgd":
        return inner_lib.gradient_descent(oracles, x, y, n_steps, step), key
    step = math.inf if name == "ai_sarah" else step
    return stochastic_inner.INNER_OPTIMIZERS[name](oracles, x, y, key, n_steps, step)


def inner_cost(name: str, n_steps: int) -> dict[str, float]:
    """The oracle calls of `inner_solve`: full-batch gradients for "sgd"."""
    return {"grad_inner_full": n_steps} if name == "sgd" else stochastic_inner.oracle_cost(name, n_steps)


def barrier_weight(grad_f: tuple[Tensor, Tensor], grad_q: tuple[Tensor, Tensor], eta: float) -> Tensor:
    """λ = max(0, (η‖∇q‖² − ⟨∇F, ∇q⟩) / ‖∇q‖²), the smallest weight making the step decrease q
    at rate φ = η‖∇q‖² (0 when ∇q = 0)."""
    norm2 = sum(torch.sum(q * q) for q in grad_q)
    inner_product = sum(torch.sum(f * q) for f, q in zip(grad_f, grad_q))
    tiny = torch.finfo(norm2.dtype).tiny
    return torch.clamp((eta * norm2 - inner_product) / torch.clamp(norm2, min=tiny), min=0.0)


class BOME(Solver):
    name = "bome"
    description = "First-order value-function method: joint (x, y) step with an adaptive barrier weight"
    reference = "Liu et al., NeurIPS 2022, arXiv 2209.08709"
    family = "first order, value function"
    stochastic = False
    needs_second_order = False
    deviations = (
        "The paper moves (x, y) with one step ξ and runs ŷ's descent with its own α; here, as in "
        "the reference benchmark, y and ŷ share step_inner and x takes step_inner / outer_ratio "
        "(outer_ratio = 1 is the paper's joint step with ξ = α).",
        "Only the paper's default control φ = η‖∇q‖² is offered; the reference's "
        "choice_phi='value' (φ = η q) is not.",
    )
    reference_name = "BOME"
    reference_params = {"step_size": "step_inner", "outer_ratio": "outer_ratio",
                        "n_inner_steps": "n_inner_steps", "eta": "eta"}
    Params = BOMEParams
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "outer_ratio": LogUniform(1e-2, 1e2),
                    "n_inner_steps": IntRange(1, 50), "eta": LogUniform(1e-2, 1.0)}

    def __init__(self, params=None, **overrides):
        super().__init__(params, **overrides)
        if self.params.inner not in stochastic_inner.INNER_OPTIMIZERS:
            raise UserError(f"bome: unknown inner optimizer {self.params.inner!r}; choose one of "
                            f"{', '.join(stochastic_inner.INNER_OPTIMIZERS)}")

    def skip(self, problem):
        if self.params.inner == "ai_sarah" and not problem.twice_differentiable:
            return f"{self.name} with inner=ai_sarah takes Hessian-vector products; {problem.name} is not twice differentiable"
        return super().skip(problem)

    def oracle_cost(self, facts):
        cost = dict(inner_cost(self.params.inner, self.params.n_inner_steps))
        cost["grad_inner_full"] = cost.get("grad_inner_full", 0) + 2
        cost["grad_outer_full"] = 1
        return cost

    def step(self, oracles, state):
        p = self.params
        x, y = state["x"], state["y"]
        y_hat, key = inner_solve(oracles, x, y, state["key"], p.inner, p.n_inner_steps, p.step_inner)
        grad_x_g, grad_y_g = oracles.grad_inner(x, y, None)
        grad_x_g_hat, _ = oracles.grad_inner(x, y_hat, None)
        grad_x_f, grad_y_f = oracles.grad_outer(x, y, None)
        q_x, q_y = grad_x_g - grad_x_g_hat, grad_y_g
        lam = barrier_weight((grad_x_f, grad_y_f), (q_x, q_y), p.eta)
        d_x = grad_x_f + lam * q_x
        y = oracles.project_y(y - p.step_inner * (grad_y_f + lam * q_y))
        return {"x": x - (p.step_inner / p.outer_ratio) * d_x, "y": y, "key": key, "hypergradient": d_x}
