"""Per-step cost of a solver, and how it compares with the oracle calls it declares.

oracle-normalized cost = measured time per step / Σ_kind (declared calls per step × measured
time of one call of that kind). Close to 1: the step is its oracle calls. Above 1: the solver
spends time outside the oracles (bookkeeping, a linear solve over a history, Python overhead).
Below 1: it shares work between calls (e.g. one vjp gives an HVP and a cross product).

Eager steps, synchronized clock; the problem's own (hand-derived) oracles where it has them.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Callable

import torch

from . import rng
from .cells import DTYPES, Cell, RunConfig, build_problem, resolve_device, validate
from .clock import Clock
from .oracles import Oracles
from .params import parse_spec


@dataclass
class StepProfile:
    solver: str
    ms_per_step: float
    modeled_ms: float  # Σ declared calls × one call's time
    declared: dict[str, float]
    skipped: str | None = None

    @property
    def normalized(self) -> float:
        return self.ms_per_step / self.modeled_ms if self.modeled_ms > 0 else float("nan")


def _median_time(fn: Callable[[int], object], clock: Clock, repeats: int) -> float:
    fn(repeats)  # warm up (allocations, lazy initialization)
    times = []
    for i in range(repeats):
        start = clock.now()
        fn(i)
        times.append(clock.now() - start)
    return statistics.median(times)


def time_oracles(oracles: Oracles, x: torch.Tensor, y: torch.Tensor, clock: Clock,
                 repeats: int = 20) -> dict[str, float]:
    """Seconds for one call of each oracle kind, mini-batch and full batch (the `calls` keys).

    Each repeat draws a fresh block, as a solver does: timing one block over and over would
    measure it from the cache and flatter the oracles.
    """
    v = torch.ones_like(y)
    calls = {
        "grad_inner": lambda b: oracles.grad_inner_y(x, y, b),
        "grad_outer": lambda b: oracles.grad_outer(x, y, b),
        "hvp": lambda b: oracles.hvp_inner(x, y, v, b),
        "cross": lambda b: oracles.cross_inner(x, y, v, b),
        "value_inner": lambda b: oracles.value_inner(x, y, b),
        "value_outer": lambda b: oracles.value_outer(x, y, b),
    }
    times = {}
    with torch.no_grad():
        for kind, call in calls.items():
            sample = oracles.sample_outer if "outer" in kind else oracles.sample_inner
            times[kind] = _median_time(lambda i: call(sample(rng.make_key(i, x.device))), clock, repeats)
            times[kind + "_full"] = _median_time(lambda i: call(None), clock, max(3, repeats // 4))
    oracles.reset_counts()
    return times


def profile_step(cell: Cell, device: str = "cpu", dtype: str = "float32", steps: int = 50,
                 oracle_times: dict[str, float] | None = None) -> StepProfile:
    """Measured ms per eager step of `cell`'s solver, and the time its declared oracles take."""
    problem_cls, problem_params, solver_cls, solver_params = validate(cell)
    torch_device = resolve_device(device)
    problem = build_problem(problem_cls, problem_params, torch_device, DTYPES[dtype])
    solver = solver_cls(solver_params)
    reason = solver.skip(problem)
    if reason:
        return StepProfile(cell.solver, float("nan"), float("nan"), {}, skipped=reason)
    oracles = Oracles(problem)
    clock = Clock(torch_device)
    x, y = problem.x0(), problem.y0()
    if oracle_times is None:
        oracle_times = time_oracles(oracles, x, y, clock)
    declared = solver.oracle_cost(oracles.facts)
    with torch.no_grad():
        state = solver.init(oracles, x, y, rng.make_key(cell.seed, torch_device))
        for _ in range(3):  # warm up
            state = solver.step(oracles, state)
        clock.start()
        for _ in range(steps):
            state = solver.step(oracles, state)
        seconds = clock.stop() / steps
    modeled = sum(count * oracle_times.get(kind, float("nan")) for kind, count in declared.items())
    return StepProfile(cell.solver, 1e3 * seconds, 1e3 * modeled, declared)


def profile_solvers(problem_spec: str, solver_specs: list[str], device: str = "cpu", dtype: str = "float32",
                    steps: int = 50) -> list[StepProfile]:
    """`profile_step` of each solver spec on one problem spec, every name checked before any
    timing; the oracles are timed once and shared, so the solvers are modeled alike."""
    problem_name, problem_values = parse_spec(problem_spec)
    cells = [Cell(problem_name, name, problem_values, values) for name, values in map(parse_spec, solver_specs)]
    RunConfig(device=device, dtype=dtype)  # a UserError for a bad device or dtype
    for cell in cells:
        validate(cell)
    if not cells:
        return []
    problem_cls, problem_params, _, _ = validate(cells[0])
    torch_device = resolve_device(device)
    problem = build_problem(problem_cls, problem_params, torch_device, DTYPES[dtype])
    oracle_times = time_oracles(Oracles(problem), problem.x0(), problem.y0(), Clock(torch_device))
    return [profile_step(cell, device, dtype, steps, oracle_times) for cell in cells]
