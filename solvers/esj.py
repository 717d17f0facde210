"""ESJ (PZOBO): Hessian-free hypergradient with an evolution-strategies estimate of dy_T/dx.

Each outer step, from the current y (warm start):

    y_T(x) ← T inner steps on g(x, ·);   u_1 … u_Q ~ N(0, I_{d_x})
    y_T(x + μ u_q) ← the same T steps from the same start at the perturbed outer point
    δ_q = (y_T(x + μ u_q) − y_T(x)) / μ          (≈ J_T u_q,  J_T = ∂y_T/∂x)
    Ĵ = (1/Q) Σ_q δ_q u_qᵀ                        (Gaussian smoothing: E[Ĵ] → J_T as μ → 0)
    d = ∇_x f(x, y_T) + Ĵᵀ ∇_y f(x, y_T) = ∇_x f + (1/Q) Σ_q ⟨δ_q, ∇_y f⟩ u_q,   x ← x − (α / r) d

Only gradients of g and f: no HVP, no cross derivative. Ĵ is never formed (Q dot products).
The inner steps are full-batch gradient descent (inner="sgd", the paper's), the Q + 1 runs
batched into one (as the reference's vmap: every step reads the data once); another inner
optimizer draws its mini-batches from one key shared by the Q + 1 runs, so every run sees the
same batches and δ_q measures how the path moves with x, not a change of noise.

Oracle cost per step (full batch): (Q + 1)·T grad_inner (inner="sgd"; otherwise Q + 1 times that
inner optimizer's cost), 1 grad_outer.

Reference: D. Sow, K. Ji, Y. Liang. "On the convergence theory for Hessian-free bilevel
algorithms", NeurIPS 2022, arXiv 2110.07004; authors' code sowmaster/esjacobians.
"""
import math
from dataclasses import dataclass
from typing import Callable

import torch

from benchopt_bilevel import inner as inner_lib
from benchopt_bilevel import rng, stochastic_inner
from benchopt_bilevel.errors import UserError
from benchopt_bilevel.linalg import repeat
from benchopt_bilevel.params import paper, reference
from benchopt_bilevel.solver import IntRange, LogUniform, Solver

Tensor = torch.Tensor


@dataclass
class ESJParams:
    step_inner: float = reference(0.1, "solvers/pzobo.py: step_size")  # α
    outer_ratio: float = reference(1.0, "solvers/pzobo.py: outer_ratio")  # x's step α / r
    n_inner_steps: int = reference(10, "solvers/pzobo.py: n_inner_steps")  # T
    n_directions: int = reference(10, "solvers/pzobo.py: n_gaussian_vectors")  # Q
    smoothing: float = reference(0.1, "solvers/pzobo.py: mu")  # μ
    inner: str = paper("sgd", "Alg. 1: gradient descent on the inner problem")

    def __post_init__(self):
        if self.n_inner_steps < 1 or self.n_directions < 1:
            raise ValueError("need n_inner_steps >= 1 and n_directions >= 1")
        if self.smoothing <= 0 or self.step_inner <= 0 or self.outer_ratio <= 0:
            raise ValueError("need smoothing, step_inner and outer_ratio positive")


def inner_run(oracles, x: Tensor, y: Tensor, step: float, batches: list) -> Tensor:
    """GD (or SGD on the given batches, None = full batch) from y: one step per batch."""
    for batch in batches:
        y = oracles.project_y(y - step * oracles.grad_inner_y(x, y, batch))
    return y


def inner_solve(oracles, x: Tensor, y: Tensor, key: Tensor, name: str, n_steps: int, step: float,
                full_batch: bool) -> Tensor:
    """y_T(x): "sgd" is gradient descent (full batch when `full_batch`, else SGD on batches drawn
    from `key`); the other inner optimizers draw their batches from `key` (AI-SARAH without a
    step, as its paper). The same key gives the same batches at every x."""
    if name == "sgd" and full_batch:  # inner_run's full-batch steps, as one loop body
        return inner_lib.gradient_descent(oracles, x, y, n_steps, step)
    step = math.inf if name == "ai_sarah" else step
    return stochastic_inner.INNER_OPTIMIZERS[name](oracles, x, y, key, n_steps, step)[0]


def inner_cost(name: str, n_steps: int, full_batch: bool) -> dict[str, float]:
    """The oracle calls of one `inner_solve`."""
    if name == "sgd" and full_batch:
        return {"grad_inner_full": n_steps}
    return stochastic_inner.oracle_cost(name, n_steps)


def perturbed_differences(run: Callable[[Tensor], Tensor], x: Tensor, directions: Tensor,
                          smoothing: float) -> tuple[Tensor, Tensor]:
    """y_T(x) = run(x) and the rows δ_q = (run(x + μ u_q) − run(x)) / μ; `run` maps an outer point
    to the end of its inner run (same start, same batches for every point).

    The Q perturbed runs are one loop body (`repeat`: a while_loop in a fast build, so the graph
    holds one run whatever Q) writing row q of the differences."""
    y_T = run(x)
    rows = torch.arange(directions.shape[0], device=x.device)[:, None]

    def one_direction(carry: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        q, differences = carry
        u = directions.index_select(0, q.reshape(1))  # not directions[q]: that reads q's value
        row = (run(x + smoothing * u.reshape(x.shape)) - y_T).reshape(-1)
        return q + 1, torch.where(rows == q, row[None, :], differences)

    start = (torch.zeros((), dtype=torch.int64, device=x.device),
             y_T.new_zeros((directions.shape[0], y_T.numel())))
    _, differences = repeat(directions.shape[0], one_direction, start)
    return y_T, differences / smoothing


def perturbed_differences_rows(oracles, x: Tensor, y: Tensor, directions: Tensor, smoothing: float,
                               n_steps: int, step: float) -> tuple[Tensor, Tensor]:
    """`perturbed_differences` for the full-batch gradient-descent run from y: the Q + 1 runs
    as one batched run (`inner.gradient_descent_rows`), as the reference vmaps them, so each of
    the T steps reads the data once instead of Q + 1 times. Same values as the loop up to the
    order of float sums."""
    points = x.reshape(1, -1) + torch.cat([torch.zeros_like(directions[:1]), smoothing * directions])
    ys = inner_lib.gradient_descent_rows(oracles, points.reshape(-1, *x.shape), y, n_steps, step)
    y_T = ys[0]
    return y_T, (ys[1:] - y_T).reshape(directions.shape[0], -1) / smoothing


def jacobian_estimate(directions: Tensor, differences: Tensor) -> Tensor:
    """Ĵ = (1/Q) Σ_q δ_q u_qᵀ, shape (d_y, d_x) (for tests and diagnostics; steps never form it)."""
    return differences.T @ directions / directions.shape[0]


def es_hypergradient(grad_x_f: Tensor, grad_y_f: Tensor, directions: Tensor, differences: Tensor) -> Tensor:
    """∇_x f + Ĵᵀ ∇_y f = ∇_x f + (1/Q) Σ_q ⟨δ_q, ∇_y f⟩ u_q."""
    weights = differences @ grad_y_f.reshape(-1)
    return grad_x_f + (weights @ directions).reshape(grad_x_f.shape) / directions.shape[0]


class ESJ(Solver):
    name = "esj"
    description = "Hessian-free: Jacobian of the inner solution by Gaussian smoothing over Q perturbed inner runs"
    reference = "Sow, Ji & Liang, NeurIPS 2022, arXiv 2110.07004"
    family = "zeroth order (Hessian free)"
    stochastic = False
    needs_second_order = False
    full_batch: bool = True  # the inner runs' "sgd" is full-batch gradient descent
    deviations = (
        "The authors' code draws one direction per step and normalizes it to the unit sphere; "
        "here Q unnormalized Gaussian directions, as the paper and the reference benchmark.",
    )
    reference_name = "PZOBO"
    reference_params = {"step_size": "step_inner", "outer_ratio": "outer_ratio", "mu": "smoothing",
                        "n_gaussian_vectors": "n_directions", "n_inner_steps": "n_inner_steps"}
    Params = ESJParams
    # n_directions is the row count of the directions drawn each step (a shape): a constant of
    # a fast build. The inner count is a loop count and stays an input.
    static_params = ("n_directions",)
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "outer_ratio": LogUniform(1e-2, 1e2),
                    "n_inner_steps": IntRange(1, 50), "n_directions": IntRange(1, 20),
                    "smoothing": LogUniform(1e-3, 1.0)}

    def __init__(self, params=None, **overrides):
        super().__init__(params, **overrides)
        if self.params.inner not in stochastic_inner.INNER_OPTIMIZERS:
            raise UserError(f"{self.name}: unknown inner optimizer {self.params.inner!r}; choose one of "
                            f"{', '.join(stochastic_inner.INNER_OPTIMIZERS)}")

    def skip(self, problem):
        if self.params.inner == "ai_sarah" and not problem.twice_differentiable:
            return f"{self.name} with inner=ai_sarah takes Hessian-vector products; {problem.name} is not twice differentiable"
        return super().skip(problem)

    def oracle_cost(self, facts):
        p = self.params
        runs = {k: (p.n_directions + 1) * v for k, v in inner_cost(p.inner, p.n_inner_steps, self.full_batch).items()}
        return {**runs, ("grad_outer_full" if self.full_batch else "grad_outer"): 1}

    def step(self, oracles, state):
        p = self.params
        x = state["x"]
        key, k_directions, k_inner, k_outer = rng.split(state["key"], 4)
        directions = rng.normal(k_directions, (p.n_directions, x.numel()), x.dtype)

        def run(x_: Tensor) -> Tensor:  # one key: every run on the same batches
            return inner_solve(oracles, x_, state["y"], k_inner, p.inner, p.n_inner_steps, p.step_inner,
                               self.full_batch)

        if p.inner == "sgd" and self.full_batch:
            y, differences = perturbed_differences_rows(oracles, x, state["y"], directions, p.smoothing,
                                                        p.n_inner_steps, p.step_inner)
        else:
            y, differences = perturbed_differences(run, x, directions, p.smoothing)
        outer_batch = None if self.full_batch else oracles.sample_outer(k_outer)
        grad_x_f, grad_y_f = oracles.grad_outer(x, y, outer_batch)
        d = es_hypergradient(grad_x_f, grad_y_f, directions, differences)
        return {"x": x - (p.step_inner / p.outer_ratio) * d, "y": y, "key": key, "hypergradient": d}
