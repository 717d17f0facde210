"""The hypergradient-quality track: every estimator's error against the exact ∇h, and its cost.

Every implicit, unrolled, zeroth-order, quasi-Newton and subspace method is, at heart, an
estimator of ∇h(x). This track measures it the way the survey literature compares them: at fixed
outer points (x0, and a point near x*) and inner points (the exact y*(x), and y after K gradient
steps from y0), one step of the solver from (x, y) gives its estimate `state["hypergradient"]`
(the solver contract), whose relative error ‖ĝ − ∇h(x)‖ / ‖∇h(x)‖ is recorded against the
oracle calls and the synchronized wall time of that step, while the estimator's budget (CG,
Neumann or fixed-point iterations, unrolling depth, Gaussian directions, L-BFGS memory, ...) is
swept. The exact ∇h is the problem's own (`Problem.hypergradient`: closed form on the quadratic,
Newton + Cholesky in float64 on logreg); a problem without it is skipped with that reason.

The sweeps are data (`SWEEPS`): a solver, the parameter that sets its budget, the values, and the
parameters held fixed (e.g. no inner steps of its own, so that the inner point is the one given).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import torch

from . import rng
from .cells import DTYPES, build_problem
from .clock import Clock
from .errors import UserError
from .oracles import Oracles
from .params import build_params, parse_spec
from .problem import Problem
from .registry import get_problem, get_solver

Tensor = torch.Tensor

THRESHOLDS = (1e-2, 1e-4)  # relative errors the summary table asks the cheapest estimator for
INNER_STEPS = 20  # K: the "inexact" inner point is y after K gradient steps from y0
NEAR_OPTIMUM = 1e-2  # the point near x*: x* + NEAR_OPTIMUM (x0 − x*) where x* is known


@dataclass(frozen=True)
class Sweep:
    """One estimator: `solver` with `knob` taking `values`, the other parameters `fixed`."""

    solver: str
    knob: str | None
    values: tuple[Any, ...] = (None,)
    fixed: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.solver if self.knob is None else f"{self.solver} ({self.knob})"


# No inner steps of the solver's own (n_inner_steps=0) where the estimator is separate from the
# inner solver, so that every estimator sees the same inner point; unrolled methods unroll from it.
_POWERS = (1, 2, 4, 8, 16, 32)
SWEEPS: tuple[Sweep, ...] = (
    Sweep("aid-cg", "n_linear_steps", _POWERS, {"n_inner_steps": 0, "warm_start_v": False}),
    Sweep("aid-neumann", "n_linear_steps", _POWERS, {"n_inner_steps": 0, "warm_start_v": False}),
    Sweep("aid-fp", "n_linear_steps", _POWERS, {"n_inner_steps": 0, "warm_start_v": False}),
    Sweep("itd", "n_inner_steps", _POWERS + (64,), {"warm_start": False}),
    Sweep("fmd", "n_inner_steps", _POWERS + (64,), {"warm_start": False}),
    Sweep("t-rhg", "n_backward_steps", (1, 2, 4, 8, 16, 32), {"n_inner_steps": 32, "warm_start": False}),
    Sweep("esj", "n_directions", (1, 2, 4, 8, 16, 32), {"n_inner_steps": 32}),
    Sweep("shine", "memory", (1, 2, 5, 10, 20), {}),
    # One point each (their estimate has no budget knob), with the fewest inner steps they accept.
    Sweep("bsg1", None, (None,), {"n_inner_steps": 1}),
    Sweep("jfb", None, (None,), {"n_inner_steps": 1}),
    Sweep("subbio", None, (None,), {"n_inner_steps": 1}),
)


# -- fixed points ---------------------------------------------------------------------------------
def _largest_curvature(oracles: Oracles, x: Tensor, y: Tensor, iterations: int = 30) -> float:
    """λ_max(∇²_yy g) by power iteration (setup, not part of any measurement)."""
    v = torch.ones_like(y) / math.sqrt(y.numel())
    estimate = 1.0
    for _ in range(iterations):
        hv = oracles.hvp_inner(x, y, v, None)
        estimate = float(torch.linalg.vector_norm(hv))
        if estimate == 0.0:
            return 1.0
        v = hv / estimate
    return estimate


def _near_optimum(problem: Problem, x0: Tensor) -> Tensor:
    """x* + NEAR_OPTIMUM (x0 − x*) where the problem knows x*, else 50 steps of gradient descent
    on h with the exact hypergradient and Armijo backtracking (the same for every estimator)."""
    x_star = getattr(problem, "x_star", None)
    if isinstance(x_star, Tensor):
        return (x_star.to(x0) + NEAR_OPTIMUM * (x0 - x_star.to(x0))).clone()
    x, step = x0.clone(), 1.0
    value = lambda x_: float(problem.value(x_))  # noqa: E731 - a one-line closure
    for _ in range(50):
        gradient = problem.hypergradient(x).to(x)
        current = value(x)
        while step > 1e-8 and value(x - step * gradient) > current - 0.5 * step * float(gradient @ gradient):
            step /= 2
        x = x - step * gradient
        step *= 2
    return x


def reference_points(problem: Problem) -> list[tuple[str, Tensor, str, Tensor]]:
    """(x label, x, y label, y) at x0 and near x*, each with y*(x) and with y after K steps."""
    oracles = Oracles(problem)
    x0 = problem.x0()
    points = []
    for x_label, x in (("x0", x0), ("near x*", _near_optimum(problem, x0))):
        y = problem.y0()
        step = 1.0 / _largest_curvature(oracles, x, problem.y_star(x).to(y))
        for _ in range(INNER_STEPS):
            y = oracles.project_y(y - step * oracles.grad_inner_y(x, y, None))
        points.append((x_label, x, "y*(x)", problem.y_star(x).to(y).clone()))
        points.append((x_label, x, f"y_{INNER_STEPS}", y))
    return points


# -- one measurement --------------------------------------------------------------------------------
def measure(problem: Problem, solver_name: str, params: Mapping[str, Any], x: Tensor, y: Tensor,
            seed: int, repeats: int = 3) -> dict[str, Any]:
    """One step of the solver from (x, y): relative error of its hypergradient, its oracle calls,
    the median synchronized time of the step over `repeats` calls (the step is pure)."""
    cls = get_solver(solver_name)
    solver = cls(build_params(cls.Params, dict(params), f"solver {solver_name!r}"))
    oracles = Oracles(problem)
    clock = Clock(x.device)
    with torch.no_grad():
        state = solver.init(oracles, x.clone(), y.clone(), rng.make_key(seed, x.device))
        times = []
        for _ in range(repeats):
            oracles.reset_counts()
            start = clock.now()
            after = solver.step(oracles, state)
            times.append(clock.now() - start)
    estimate = after.get("hypergradient")
    if estimate is None:
        raise UserError(f"solver {solver_name!r} does not expose its hypergradient estimate")
    exact = problem.hypergradient(x).to(torch.float64)
    error = float(torch.linalg.vector_norm(estimate.to(torch.float64) - exact)
                  / torch.linalg.vector_norm(exact).clamp_min(torch.finfo(torch.float64).tiny))
    return {"relative_error": error, "oracle_calls": oracles.total_calls(),
            "oracle_counts": json.dumps(dict(sorted(oracles.calls.items()))),
            "step_time": float(np.median(times))}


@functools.lru_cache(maxsize=8)
def _setup(spec: str, dtype: str, device: str) -> tuple[str, Problem, list[tuple[str, Tensor, str, Tensor]]]:
    """The problem of SPEC and its reference points, built once a process: the CLI measures one
    sweep at a time, and the point near x* costs tens of exact solves on logreg."""
    name, values = parse_spec(spec)
    problem_cls = get_problem(name)
    problem = build_problem(problem_cls, build_params(problem_cls.Params, values, f"problem {name!r}"),
                            torch.device(device), DTYPES[dtype])
    if not callable(getattr(problem, "hypergradient", None)):
        raise UserError(f"problem {name!r} has no exact hypergradient: the track cannot measure errors on it")
    if not callable(getattr(problem, "y_star", None)):  # deq: an exact ∇h, but no y*(x) to start from
        raise UserError(f"problem {name!r} states no exact inner solution y_star(x): the track's reference "
                        "points start from it")
    return name, problem, reference_points(problem)


def run_track(problem_specs: Iterable[str], sweeps: Iterable[Sweep] = SWEEPS, seeds: Iterable[int] = (0,),
              dtype: str = "float64", device: str = "cpu", log=None) -> pd.DataFrame:
    """Every sweep at every reference point of every problem: one row per measurement."""
    rows = []
    sweeps, seeds = list(sweeps), list(seeds)
    for spec in problem_specs:
        name, problem, points = _setup(spec, dtype, device)
        for x_label, x, y_label, y in points:
            for sweep in sweeps:
                skip = get_solver(sweep.solver)().skip(problem)
                if skip:
                    if log:
                        log(f"skip {sweep.solver} on {name}: {skip}")
                    continue
                for value in sweep.values:
                    params = dict(sweep.fixed) | ({sweep.knob: value} if sweep.knob else {})
                    for seed in seeds:
                        row = measure(problem, sweep.solver, params, x, y, seed)
                        rows.append({"problem": spec, "estimator": sweep.label, "solver": sweep.solver,
                                     "knob": sweep.knob or "", "budget": float(value) if value is not None else np.nan,
                                     "solver_params": json.dumps(params, sort_keys=True), "x_point": x_label,
                                     "y_point": y_label, "seed": seed, "dtype": dtype, **row})
                if log:
                    log(f"{name} · {x_label} · {y_label} · {sweep.label}: done")
    return pd.DataFrame(rows)


# -- summaries -------------------------------------------------------------------------------------------
def _by_budget(table: pd.DataFrame) -> pd.DataFrame:
    """Median error, calls and time over seeds, per estimator and budget."""
    keys = ["problem", "x_point", "y_point", "estimator", "budget"]
    return (table.groupby(keys, dropna=False)[["relative_error", "oracle_calls", "step_time"]]
            .median().reset_index())


def pareto(table: pd.DataFrame) -> pd.DataFrame:
    """The (oracle calls, error) points no other estimator beats on both, per problem and point."""
    medians = _by_budget(table).sort_values(["oracle_calls", "relative_error"])
    keep = []
    for _, group in medians.groupby(["problem", "x_point", "y_point"]):
        best = math.inf
        for index, row in group.iterrows():
            if row["relative_error"] < best:
                keep.append(index)
                best = row["relative_error"]
    return medians.loc[keep]


def cheapest(table: pd.DataFrame, thresholds: Iterable[float] = THRESHOLDS) -> pd.DataFrame:
    """Per problem, point and threshold: the cheapest (oracle calls) estimator reaching it."""
    medians = _by_budget(table)
    rows = []
    for (problem, x_point, y_point), group in medians.groupby(["problem", "x_point", "y_point"]):
        for threshold in thresholds:
            reaching = group[group["relative_error"] <= threshold].sort_values(["oracle_calls", "step_time"])
            best = reaching.iloc[0] if len(reaching) else None
            rows.append({"problem": problem, "x_point": x_point, "y_point": y_point, "threshold": threshold,
                         "estimator": None if best is None else best["estimator"],
                         "budget": np.nan if best is None else best["budget"],
                         "oracle_calls": np.nan if best is None else best["oracle_calls"],
                         "step_time": np.nan if best is None else best["step_time"]})
    return pd.DataFrame(rows)


COST_AXES = {"oracle_calls": "oracle calls per step", "step_time": "seconds per step"}


def pareto_figure(table: pd.DataFrame, problem: str, cost: str = "oracle_calls"):
    """Error against COST (oracle_calls or step_time), one line per estimator, one panel per
    (x, y) point; a matplotlib figure (the caller saves or inlines it)."""
    import matplotlib  # noqa: PLC0415 - plotting is optional at import time

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    medians = _by_budget(table[table["problem"] == problem])
    points = sorted(medians.groupby(["x_point", "y_point"]).groups)
    figure, axes = plt.subplots(1, len(points), figsize=(4.2 * len(points), 3.8), squeeze=False, sharey=True)
    for axis, (x_point, y_point) in zip(axes[0], points):
        here = medians[(medians["x_point"] == x_point) & (medians["y_point"] == y_point)]
        for estimator, group in here.groupby("estimator"):
            group = group.sort_values(cost)
            axis.plot(group[cost], group["relative_error"].clip(lower=1e-16), marker="o",
                      markersize=3, label=estimator)
        for threshold in THRESHOLDS:
            axis.axhline(threshold, color="grey", linewidth=0.6, linestyle=":")
        axis.set(xscale="log", yscale="log", xlabel=COST_AXES[cost], title=f"{x_point}, {y_point}")
    axes[0][0].set_ylabel("relative error of ∇h")
    axes[0][-1].legend(fontsize=7, loc="upper right")
    figure.suptitle(problem, fontsize=9)
    figure.tight_layout()
    return figure


def plot_pareto(table: pd.DataFrame, problem: str, path: Path, cost: str = "oracle_calls") -> Path:
    """`pareto_figure` saved to PATH."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure = pareto_figure(table, problem, cost)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def sweep_by_label(label: str) -> Sweep:
    for sweep in SWEEPS:
        if label in (sweep.solver, sweep.label):
            return sweep
    raise UserError(f"no hypergradient sweep for {label!r}; choose among {', '.join(s.solver for s in SWEEPS)}")


def replace_values(sweep: Sweep, values: tuple[Any, ...]) -> Sweep:
    return dataclasses.replace(sweep, values=values)
