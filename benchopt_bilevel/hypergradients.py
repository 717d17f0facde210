"""The hypergradient-quality track: every estimator's error against the exact ∇h, and its cost.

Every implicit, unrolled, zeroth-order, quasi-Newton and subspace method is, at heart, an
estimator of ∇h(x). This track measures it the way the survey literature compares them: at fixed
outer points (x0, and a point near x*) and inner points (the exact y*(x), and y after K inner
iterations from y0: fixed-point iterations y ← T(x, y) where the problem states its map T
(`inner_map`), else gradient steps), one step of the solver from (x, y) gives its estimate
`state["hypergradient"]` (the solver contract), whose relative error ‖ĝ − ∇h(x)‖ / ‖∇h(x)‖ is recorded against the
oracle calls and the synchronized wall time of that step, while the estimator's budget (CG,
Neumann or fixed-point iterations, unrolling depth, Gaussian directions, L-BFGS memory, ...) is
swept. The exact ∇h is the problem's own (`Problem.hypergradient`: closed form on the quadratic,
Newton + Cholesky in float64 on logreg, float64 equilibria and dense adjoint solves on deq),
computed once per outer point; a problem without it is refused with that reason.

Episodic problems (each batch is a task whose inner problem restarts from `y_start`, e.g. deq)
have one inner point per x, "y_start": every solver that runs on them restarts its inner solve
there, whatever y it is given, so the inner point is the solver's own forward pass (its budget is
a parameter of the sweep). They are measured at x0 only: the point near x* would take tens of
exact hypergradients, each an exact inner solve per batch (dense Newton per image on deq).

The sweeps are data (`SWEEPS`): a solver, the parameter that sets its budget, the values, the
parameters held fixed (e.g. no inner steps of its own, so that the inner point is the one given),
and the problem attributes it needs (`needs`: the deq-implicit backward rules sweep only problems
that state their fixed-point map, so that they add nothing to the quadratic and logreg results).
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
INNER_STEPS = 20  # K: the "inexact" inner point is y after K inner iterations from y0
NEAR_OPTIMUM = 1e-2  # the point near x*: x* + NEAR_OPTIMUM (x0 − x*) where x* is known


@dataclass(frozen=True)
class Sweep:
    """One estimator: `solver` with `knob` taking `values`, the other parameters `fixed`, named
    `name` (default: the solver's name; several sweeps of one solver need their own), on problems
    that state every attribute of `needs`."""

    solver: str
    knob: str | None
    values: tuple[Any, ...] = (None,)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None
    needs: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        stem = self.name or self.solver
        return stem if self.knob is None else f"{stem} ({self.knob})"

    def skip(self, problem: Problem) -> str | None:
        """Why this sweep does not apply to PROBLEM (an attribute it needs, or the solver's own
        reason), or None."""
        missing = [attribute for attribute in self.needs if getattr(problem, attribute, None) is None]
        if missing:
            return f"the {self.label} sweep needs a problem stating {', '.join(missing)}"
        return get_solver(self.solver)().skip(problem)


# No inner steps of the solver's own (n_inner_steps=0) where the estimator is separate from the
# inner solver, so that every estimator sees the same inner point; unrolled methods unroll from it.
_POWERS = (1, 2, 4, 8, 16, 32)
# Broyden's forward iterations from y_start in the deq sweeps: on the tiny deq at x0 the cell is far
# from contractive (spectral radius of ∂_z T about 2.7-2.9 at z*), and Broyden from 0 reaches a
# relative distance to z* of 1e-1 after 40 iterations, 4e-3 after 100 (float64): the forward error
# then bounds the estimate's from below (relative error 0.21 with 64 implicit backward iterations,
# 0.11 with 160 forward ones; docs/hypergradients-deq.md), and the sweep still separates the rules.
DEQ_FORWARD_ITERS = 100
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
    # The deq-implicit backward rules, on problems stating their map T (deq); the forward pass
    # (Broyden from y_start on an episodic problem) gets DEQ_FORWARD_ITERS, so that the errors
    # differ mostly by the backward rule (the forward's sets a floor, see DEQ_FORWARD_ITERS).
    *(Sweep("deq-implicit", knob, values, {"backward": backward, "forward_iters": DEQ_FORWARD_ITERS},
            name=f"deq-{backward}", needs=("inner_map",))
      for backward, knob, values in (("implicit", "backward_iters", _POWERS + (64,)),
                                     ("capped", "backward_iters", _POWERS),
                                     ("shine", "refine", (0, 1, 2, 4, 8)),
                                     ("jfb", None, (None,)))),
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


def _inexact_inner_point(oracles: Oracles, x: Tensor, y0: Tensor, y_star: Tensor) -> Tensor:
    """y after INNER_STEPS iterations from y0: y ← T(x, y) where the problem states its map T,
    else projected gradient steps 1 / λ_max(∇²_yy g at y*(x)) long."""
    y = y0
    if oracles.problem.inner_map is not None:
        for _ in range(INNER_STEPS):
            y = oracles.fixed_point_map(x, y, None, 0.0)
        return y
    step = 1.0 / _largest_curvature(oracles, x, y_star)
    for _ in range(INNER_STEPS):
        y = oracles.project_y(y - step * oracles.grad_inner_y(x, y, None))
    return y


def reference_points(problem: Problem) -> list[tuple[str, Tensor, str, Tensor]]:
    """(x label, x, y label, y) at x0 and near x*, each with y*(x) and with y after K inner
    iterations; on an episodic problem (see the module's docstring) x0 with y_start only."""
    oracles = Oracles(problem)
    x0 = problem.x0()
    if problem.episodic:
        return [("x0", x0, "y_start", problem.y_start(x0, None).clone())]
    points = []
    for x_label, x in (("x0", x0), ("near x*", _near_optimum(problem, x0))):
        y0 = problem.y0()
        y_star = problem.y_star(x).to(y0).clone()
        points.append((x_label, x, "y*(x)", y_star))
        points.append((x_label, x, f"y_{INNER_STEPS}", _inexact_inner_point(oracles, x, y0, y_star)))
    return points


# -- one measurement --------------------------------------------------------------------------------
def measure(problem: Problem, solver_name: str, params: Mapping[str, Any], x: Tensor, y: Tensor,
            seed: int, repeats: int = 3, exact: Tensor | None = None) -> dict[str, Any]:
    """One step of the solver from (x, y): relative error of its hypergradient against EXACT
    (default: the problem's ∇h(x)), its oracle calls, the median synchronized time of the step
    over `repeats` calls (the step is pure)."""
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
    exact = (problem.hypergradient(x) if exact is None else exact).to(torch.float64)
    error = float(torch.linalg.vector_norm(estimate.to(torch.float64) - exact)
                  / torch.linalg.vector_norm(exact).clamp_min(torch.finfo(torch.float64).tiny))
    return {"relative_error": error, "oracle_calls": oracles.total_calls(),
            "oracle_counts": json.dumps(dict(sorted(oracles.calls.items()))),
            "step_time": float(np.median(times))}


@functools.lru_cache(maxsize=8)
def _setup(spec: str, dtype: str, device: str) -> tuple[str, Problem, list[tuple[str, Tensor, str, Tensor]],
                                                       dict[str, Tensor]]:
    """The problem of SPEC, its reference points and the exact ∇h at each of their x (by x
    label), built once a process: the CLI measures one sweep at a time, the point near x* costs
    tens of exact solves on logreg, and one exact ∇h seconds on the tiny deq."""
    name, values = parse_spec(spec)
    problem_cls = get_problem(name)
    problem = build_problem(problem_cls, build_params(problem_cls.Params, values, f"problem {name!r}"),
                            torch.device(device), DTYPES[dtype])
    if not callable(getattr(problem, "hypergradient", None)):
        raise UserError(f"problem {name!r} has no exact hypergradient: the track cannot measure errors on it")
    if not problem.episodic and not callable(getattr(problem, "y_star", None)):
        raise UserError(f"problem {name!r} states no exact inner solution y_star(x): the track's reference "
                        "points start from it")
    points = reference_points(problem)
    exact = {x_label: problem.hypergradient(x).to(torch.float64) for x_label, x, _, _ in points}
    for x_label, gradient in exact.items():
        if not bool(torch.isfinite(gradient).all()):
            raise UserError(f"problem {name!r} has no exact hypergradient at {x_label} (NaN: e.g. no "
                            "equilibrium found, or a training set too large for the dense solve)")
    return name, problem, points, exact


def run_track(problem_specs: Iterable[str], sweeps: Iterable[Sweep] = SWEEPS, seeds: Iterable[int] = (0,),
              dtype: str = "float64", device: str = "cpu", log=None) -> pd.DataFrame:
    """Every sweep at every reference point of every problem: one row per measurement."""
    rows = []
    sweeps, seeds = list(sweeps), list(seeds)
    for spec in problem_specs:
        name, problem, points, exact = _setup(spec, dtype, device)
        for x_label, x, y_label, y in points:
            for sweep in sweeps:
                skip = sweep.skip(problem)
                if skip:
                    if log:
                        log(f"skip {sweep.label} on {name}: {skip}")
                    continue
                for value in sweep.values:
                    params = dict(sweep.fixed) | ({sweep.knob: value} if sweep.knob else {})
                    for seed in seeds:
                        row = measure(problem, sweep.solver, params, x, y, seed, exact=exact[x_label])
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
    """The first sweep whose solver, name or label is LABEL (`sweeps_by_label`: all of them)."""
    for sweep in SWEEPS:
        if label in (sweep.solver, sweep.name, sweep.label):
            return sweep
    raise UserError(f"no hypergradient sweep for {label!r}; choose among {', '.join(s.solver for s in SWEEPS)}")


def sweeps_by_label(label: str) -> list[Sweep]:
    """Every sweep whose solver, name or label is LABEL (deq-implicit has one per backward rule)."""
    return [sweep for sweep in SWEEPS if label in (sweep.solver, sweep.name, sweep.label)] or [sweep_by_label(label)]


def replace_values(sweep: Sweep, values: tuple[Any, ...]) -> Sweep:
    return dataclasses.replace(sweep, values=values)
