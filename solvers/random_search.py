"""Random search: black-box hyperparameter search, one trial per step at a point drawn in a box.

Each step is one trial t:

    x_t = Π_box(x0) at t = 0 (the start, as the reference benchmark enqueues it), else
          x_t ~ U(box) coordinate-wise (log-uniform when the problem's box says so), from the key;
    y_t ≈ y*(x_t): full-batch L-BFGS from y_start(x_t) with a backtracking (Armijo) line search,
          until ‖∇_y g(x_t, y_t)‖ ≤ inner_tol or after inner_max_iter iterations;
    f_t = f(x_t, y_t) on the full outer data;

and the output is the trial of smallest f_t so far (the start (x0, y0) before the first trial).
The box is the problem's `hyperparameter_box()`; problems without one, or with more than
`max_dim` hyperparameters, are skipped. Trials are independent: every inner solve starts afresh.

The step is host-side: the inner loop reads ‖∇_y g‖ and the line search's values to stop, so
its cost varies with x_t and it is never compiled. `LBFGSToTolerance` and `RandomSearch` are
shared with `optuna_tpe`, which only proposes x_t differently.

Oracle cost per step (full batch; a cap, the loop stops at the tolerance): at most
inner_max_iter + 1 grad_inner_full and 1 + inner_max_iter · max_backtracks value_inner_full,
and exactly 1 value_outer_full. Measured: 5 gradients and 7 values per trial on the
conformance quadratic (float64); 19 to 30 gradients and as many values on the default
benchmark's logreg (ijcnn1, float32).

Reference: J. Bergstra, Y. Bengio. "Random search for hyper-parameter optimization", JMLR 13,
2012. Inner solver: J. Nocedal, S. Wright. "Numerical Optimization", 2nd ed., L-BFGS (§7.2) with
a backtracking line search (§3.1; section numbers from memory).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from benchopt_bilevel import rng
from benchopt_bilevel.facts import ProblemFacts
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.params import ours, reference
from benchopt_bilevel.problem import HyperparameterBox, Problem
from benchopt_bilevel.quasi_newton import lbfgs_apply, lbfgs_init, lbfgs_update
from benchopt_bilevel.solver import LogUniform, Solver, State

Tensor = torch.Tensor
ARMIJO = 1e-4  # sufficient decrease constant c₁ (Nocedal & Wright's usual value)
MAX_DIM_WHY = ("black-box search needs trials growing with the dimension: past ~100 coordinates "
               "a benchmark's hundreds of trials leave a few per coordinate, and TPE's per-trial "
               "cost grows as coordinates x trials (0.85 s per proposal at 100 coordinates and "
               "50 trials on a shared 2-core CPU)")


@dataclass
class LBFGSToTolerance:
    """Full-batch L-BFGS on g(x, ·) until ‖∇_y g‖ ≤ tol, with a backtracking line search."""

    tol: float
    max_iter: int
    memory: int
    max_backtracks: int

    def cost_cap(self) -> dict[str, float]:
        """The most oracle calls of one solve."""
        return {"grad_inner_full": self.max_iter + 1, "value_inner_full": 1 + self.max_iter * self.max_backtracks}

    def __call__(self, oracles: Oracles, x: Tensor, y: Tensor) -> Tensor:
        history = lbfgs_init(y, self.memory)
        value, grad = oracles.value_inner(x, y, None), oracles.grad_inner_y(x, y, None)
        for _ in range(self.max_iter):
            if not float(torch.linalg.vector_norm(grad)) > self.tol:  # host-side: stop at the tolerance
                break  # (a NaN gradient stops too)
            direction = -lbfgs_apply(history, grad)
            slope = torch.sum(grad * direction)
            if not float(slope) < 0:  # round-off made H indefinite: steepest descent
                direction, slope = -grad, -torch.sum(grad * grad)
            step, accepted = 1.0, None
            for _ in range(self.max_backtracks):
                candidate = y + step * direction
                candidate_value = oracles.value_inner(x, candidate, None)
                if bool(candidate_value <= value + ARMIJO * step * slope):
                    accepted = candidate
                    break
                step /= 2
            if accepted is None:  # no decrease along the direction: y is as good as round-off allows
                break
            new_grad = oracles.grad_inner_y(x, accepted, None)
            history = lbfgs_update(history, accepted - y, new_grad - grad, point=y)
            y, value, grad = accepted, candidate_value, new_grad
        return y


@dataclass
class RandomSearchParams:
    inner_tol: float = reference(1e-3, "solvers/optuna.py: jaxopt LBFGS's default tol on ‖∇_y g‖")
    inner_max_iter: int = reference(500, "solvers/optuna.py: jaxopt LBFGS's default maxiter")
    lbfgs_memory: int = reference(10, "solvers/optuna.py: jaxopt LBFGS's default history_size")
    max_backtracks: int = reference(15, "solvers/optuna.py: jaxopt LBFGS's default maxls (from memory)")
    max_dim: int = ours(100, MAX_DIM_WHY)

    def __post_init__(self) -> None:
        if not self.inner_tol > 0:
            raise ValueError(f"inner_tol must be positive, got {self.inner_tol}")
        if min(self.inner_max_iter, self.lbfgs_memory, self.max_backtracks, self.max_dim) < 1:
            raise ValueError("inner_max_iter, lbfgs_memory, max_backtracks and max_dim must be at least 1")


def box_of(oracles: Oracles) -> HyperparameterBox:
    """The problem's search box (read once, in init: `Oracles` does not carry it)."""
    box = oracles.problem.hyperparameter_box()
    if box is None:
        raise ValueError(f"{oracles.problem.name} declares no hyperparameter box")
    return box


class RandomSearch(Solver):
    name = "random-search"
    description = "Black-box baseline: hyperparameters drawn uniformly in a box, inner problem solved per trial"
    reference = "Bergstra & Bengio, JMLR 13 (2012)"
    family = "black-box hyperparameter search"
    stochastic = False  # full-batch oracles; the randomness is in the proposals
    needs_second_order = False
    host_side = ("each trial's inner solve runs until ‖∇_y g‖ ≤ inner_tol, a loop that reads "
                 "tensor values on the host (its number of oracle calls varies with x)")
    deviations = (
        "Not in the reference benchmark; the inner solve is its Optuna baseline's (L-BFGS to "
        "jaxopt's default tolerance), with a backtracking line search instead of jaxopt's zoom "
        "line search.",
    )
    Params = RandomSearchParams
    search_space = {"inner_tol": LogUniform(1e-6, 1e-1)}

    def __init__(self, params=None, **overrides) -> None:
        super().__init__(params, **overrides)
        p = self.params
        self.solve_inner = LBFGSToTolerance(p.inner_tol, p.inner_max_iter, p.lbfgs_memory, p.max_backtracks)

    def skip(self, problem: Problem) -> str | None:
        reason = super().skip(problem)
        if reason:
            return reason
        if problem.hyperparameter_box() is None:
            return (f"{self.name} searches the hyperparameters in a box; {problem.name} declares "
                    "none (Problem.hyperparameter_box)")
        if problem.dim_x > self.params.max_dim:
            return (f"{self.name} searches at most max_dim={self.params.max_dim} hyperparameters; "
                    f"{problem.name} has {problem.dim_x} ({MAX_DIM_WHY})")
        return None

    def oracle_cost(self, facts: ProblemFacts) -> dict[str, float]:
        return {**self.solve_inner.cost_cap(), "value_outer_full": 1}

    def init(self, oracles: Oracles, x: Tensor, y: Tensor, key: Tensor) -> State:
        box = box_of(oracles)
        low, high = box.low.to(x), box.high.to(x)
        return {"x": x, "y": y, "key": key,
                "best_value": torch.full((), torch.finfo(x.dtype).max, dtype=x.dtype, device=x.device),
                "trial": torch.zeros((), dtype=torch.int64, device=x.device),
                "x_start": torch.clamp(x, low, high), "low": low, "high": high,
                "log_scale": torch.tensor(box.log, device=x.device)}

    def propose(self, state: State, key: Tensor) -> Tensor:
        """The next trial's x after the start: uniform in the box (log-uniform on a log box)."""
        low, high, log = state["low"], state["high"], state["log_scale"]
        u = rng.uniform(key, tuple(low.shape), low.dtype)
        span_low = torch.where(log, torch.log(low), low)
        span_high = torch.where(log, torch.log(high), high)
        point = span_low + u * (span_high - span_low)
        return torch.clamp(torch.where(log, torch.exp(point), point), low, high)  # round-off of exp

    def trial(self, oracles: Oracles, state: State, x: Tensor) -> tuple[Tensor, Tensor]:
        """(y, f(x, y)) of one trial at x: the inner problem solved afresh, then f on the full data."""
        y = self.solve_inner(oracles, x, oracles.y_start(x, None))
        return y, oracles.value_outer(x, y, None)

    def record(self, state: State, x: Tensor, value: Tensor) -> State:
        """What the state keeps of the trial (x, f) besides the best one: nothing here."""
        return {}

    def step(self, oracles: Oracles, state: State) -> State:
        key, k_propose = rng.split(state["key"])
        first = int(state["trial"]) == 0  # host-side: the start is the first trial
        x = state["x_start"] if first else self.propose(state, k_propose)
        y, value = self.trial(oracles, state, x)
        # A failed trial (NaN or infinite f) counts as the worst value: the state stays finite,
        # which the runner reads as not diverged, and the trial is never kept.
        worst = torch.finfo(state["best_value"].dtype).max
        value = torch.nan_to_num(value.to(state["best_value"].dtype), nan=worst, posinf=worst)
        better = value < state["best_value"]
        return {**state, "key": key, "trial": state["trial"] + 1,
                "x": torch.where(better, x, state["x"]), "y": torch.where(better, y, state["y"]),
                "best_value": torch.where(better, value, state["best_value"]),
                **self.record(state, x, value)}
