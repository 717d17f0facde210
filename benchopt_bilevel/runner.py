"""Run one cell: (problem, solver, params, seed, device, dtype) -> result rows.

The runner owns the loop, the clock, the evaluation schedule and the stop rules:
- steps run in chunks between evaluation points; a chunk is up to `chunk_steps` calls of the
  pure `solver.step`, eager or compiled (`compile=True`: torch.compile of the step, or of
  `compile_steps` consecutive steps as one graph, which shares the per-call overhead of a
  compiled function at the price of a longer compilation; `compile_backend="aot"` on the CPU
  compiles ahead of time with AOTInductor, whose per-call overhead is a tenth of it);
- the clock synchronizes the device before every read and runs only around chunks: batch
  sampling (inside the step) is timed, evaluation is not;
- a warm-up (one step eager, three compiled) runs on a copy of the initial state; its time
  (compilation included) is stored in `warmup_time`, never hidden and never added to `time`;
- evaluation points are log-spaced in steps when `max_steps` is given, else in time;
- the run stops on max_time, max_steps, the target (if asked), divergence or an exception, each
  recorded as a status with a message. A failed run still yields its rows.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import resource
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from . import rng
from .aot import compile_ahead
from .clock import Clock
from .errors import UserError
from .oracles import Oracles
from .params import build_params, params_to_dict
from .problem import Problem
from .provenance import code_hash, provenance
from .registry import get_problem, get_solver
from .results import SCHEMA_VERSION, write_run
from .solver import Solver, State

DTYPES = {"float32": torch.float32, "float64": torch.float64}
COMPILE_BACKENDS = ("inductor", "aot")
ORACLE_COLUMNS = tuple(f"{kind}{suffix}" for kind in
                       ("grad_inner", "grad_outer", "hvp", "cross", "value_inner", "value_outer")
                       for suffix in ("", "_full"))


@dataclass
class RunConfig:
    """How one cell is run (everything but the problem, the solver and the seed)."""

    max_time: float = 10.0  # seconds of timed steps
    max_steps: int | None = None
    n_evals: int = 25  # evaluation points, log-spaced
    device: str = "cpu"
    dtype: str = "float32"
    compile: bool = False
    chunk_steps: int = 32  # most steps between two clock reads
    compile_steps: int = 1  # compiled: steps unrolled into one graph (chunks are multiples of it)
    compile_backend: str = "inductor"  # compiled: torch.compile, or "aot" (AOTInductor, CPU)
    target: float | None = None  # overrides the problem's target value
    stop_at_target: bool = False
    blowup: float = 1e8  # diverged when the divergence metric exceeds blowup * max(1, initial)

    def __post_init__(self) -> None:
        if not self.max_time > 0:
            raise UserError(f"max_time must be positive, got {self.max_time}")
        if self.max_steps is not None and self.max_steps < 1:
            raise UserError(f"max_steps must be at least 1, got {self.max_steps}")
        if self.n_evals < 2:
            raise UserError(f"n_evals must be at least 2, got {self.n_evals}")
        if self.chunk_steps < 1:
            raise UserError(f"chunk_steps must be at least 1, got {self.chunk_steps}")
        if self.compile_steps < 1:
            raise UserError(f"compile_steps must be at least 1, got {self.compile_steps}")
        if self.compile_steps > 1 and not self.compile:
            raise UserError("compile_steps > 1 unrolls steps into a compiled graph: it needs --compile")
        if self.compile_backend not in COMPILE_BACKENDS:
            raise UserError(f"unknown compile backend {self.compile_backend!r}; choose one of {', '.join(COMPILE_BACKENDS)}")
        if self.compile_backend != "inductor" and not self.compile:
            raise UserError(f"compile_backend {self.compile_backend!r} chooses how steps are compiled: it needs --compile")
        if self.compile_backend == "aot" and self.device.startswith("cuda"):
            raise UserError("compile_backend 'aot' is for the CPU; on a GPU, --compile records CUDA graphs")
        if self.dtype not in DTYPES:
            raise UserError(f"unknown dtype {self.dtype!r}; choose one of {', '.join(DTYPES)}")


@dataclass
class Cell:
    """What to run: a problem and a solver with their parameters, and a seed."""

    problem: str
    solver: str
    problem_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    solver_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    seed: int = 0


def resolve_device(name: str) -> torch.device:
    """The torch device for `name`; a clear error when CUDA is asked for and absent."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was requested but no CUDA GPU is visible (torch.cuda.is_available() is False)")
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"unsupported device {name!r}; use cpu or cuda")
    return device


def validate(cell: Cell) -> tuple[type[Problem], Any, type[Solver], Any]:
    """Resolve names and parameters (UserError on bad input), before anything runs."""
    problem_cls = get_problem(cell.problem)
    problem_params = build_params(problem_cls.Params, cell.problem_params, f"problem {cell.problem!r}")
    solver_cls = get_solver(cell.solver)
    solver_params = build_params(solver_cls.Params, cell.solver_params, f"solver {cell.solver!r}")
    return problem_cls, problem_params, solver_cls, solver_params


_PROBLEM_CACHE: dict[tuple, Problem] = {}


def build_problem(problem_cls: type[Problem], params: Any, device: torch.device, dtype: torch.dtype) -> Problem:
    """Build (or reuse) the problem: its data depend only on its parameters and data seed.

    The last problem built is kept, so the cells of a benchmark that share a problem build it
    once. Problems are never modified by solvers (steps are pure), so sharing is safe.
    """
    cache_key = (problem_cls, json.dumps(params_to_dict(params), sort_keys=True), str(device), dtype)
    if cache_key not in _PROBLEM_CACHE:
        _PROBLEM_CACHE.clear()  # keep one: literature-size problems take hundreds of MB
        data_seed = getattr(params, "seed", 0)
        problem = problem_cls(params, torch.Generator().manual_seed(data_seed)).to(device, dtype)
        _PROBLEM_CACHE[cache_key] = problem
    return _PROBLEM_CACHE[cache_key]


def make_chunk(solver: Solver, oracles: Oracles, compile: bool, length: int, device: torch.device,
               unroll: int = 1, backend: str = "inductor") -> Callable:
    """`chunk(state, n) -> state` running n steps, compiled when asked.

    By default the compiled unit is one step, looped in Python: one step compiles in seconds and
    the C++ wrapper (CPU) or a CUDA graph (GPU) removes the per-op overhead inside it. What is
    left is the per-call cost of a compiled function (guards, wrapper: ~35 µs on a 2-core CPU),
    which dominates small problems (SOBA on ijcnn1: ~100 µs per compiled step). `unroll` > 1
    compiles that many consecutive steps as one graph: the call cost is shared, and compilation
    grows with the graph (SOBA on ijcnn1, 8 steps: 24 µs per step after ~100 s of compilation,
    docs/compile.md). A chunk then runs n // unroll compiled calls; the runner asks for
    multiples of `unroll`, other remainders run as eager steps (the same numbers: steps are pure
    and their randomness is counter-based). `length` is the chunk size of the evaluation schedule.

    backend="aot" (CPU): the steps are exported and compiled ahead of time by AOTInductor
    (`aot.py`) on the first call, then run with a per-call cost of a few µs instead of ~35.
    """
    step, unroll = solver.step, unroll if compile else 1
    if compile:
        if device.type == "cpu":
            import torch._inductor.config as inductor_config

            inductor_config.cpp_wrapper = True  # the C++ wrapper removes Python from the step
        # One compilation per cell: without a reset, every cell of a process would share dynamo's
        # cache for this function (and its recompile limit), recompiling inside the timed loop.
        torch._dynamo.reset()

        def steps(oracles_: Oracles, state: State) -> State:
            for _ in range(unroll):
                state = solver.step(oracles_, state)
            return state

        if backend == "aot":
            step = _ahead_of_time_on_first_call(steps)
        else:
            step = torch.compile(steps, fullgraph=False, mode="reduce-overhead" if device.type == "cuda" else None)

    def chunk(state: State, n: int) -> State:
        for _ in range(n // unroll):
            state = step(oracles, state)
        for _ in range(n % unroll):
            state = solver.step(oracles, state)
        return state

    return chunk


def _ahead_of_time_on_first_call(steps: Callable[[Oracles, State], State]) -> Callable[[Oracles, State], State]:
    """`steps`, compiled by AOTInductor for the shapes of the first state it is called with (the
    warm-up's copy, so compilation lands in `warmup_time`)."""
    compiled: list[Callable[[State], State]] = []

    def step(oracles: Oracles, state: State) -> State:
        if not compiled:
            compiled.append(compile_ahead(lambda s: steps(oracles, s), state))
        return compiled[0](state)

    return step


def _peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # process high-water mark
    return int(peak_kib * (1 if sys.platform == "darwin" else 1024))


def _log_grid(high: float, count: int, low: float) -> np.ndarray:
    return np.geomspace(low, high, count)


def _clone(state: State) -> State:
    return {k: v.clone() for k, v in state.items()}


def _finite(state: State) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())


def _evaluate(problem: Problem, solver: Solver, state: State) -> dict[str, float]:
    x, y = solver.output(state)
    metrics = {f"objective_{k}": v for k, v in problem.evaluate(x, y).items()}
    estimate = state.get("hypergradient")
    exact_fn = getattr(problem, "hypergradient", None)
    if estimate is not None and exact_fn is not None:
        exact = exact_fn(x).to(torch.float64)
        error = torch.sum((estimate.to(torch.float64) - exact) ** 2)  # absolute: ∇h → 0 near x*
        metrics["hypergradient_error"] = float(error)
    return metrics


def run_cell(cell: Cell, config: RunConfig, output_dir: str | Path | None = None) -> pd.DataFrame:
    """Run one cell and return its rows (also written atomically to output_dir when given).

    Bad input (unknown names, bad parameters, no GPU) raises UserError before anything runs;
    anything that goes wrong afterwards becomes a status row.
    """
    problem_cls, problem_params, solver_cls, solver_params = validate(cell)
    device = resolve_device(config.device)
    dtype = DTYPES[config.dtype]
    solver = solver_cls(solver_params)
    identity, run_id = cell_identity(cell, config)
    rows, outcome = _run(problem_cls, problem_params, solver, cell.seed, config, device, dtype)
    table = _table(rows, outcome, identity, run_id, solver_params, problem_params, device)
    if output_dir is not None:
        write_run(table, output_dir, run_id)
    return table


def failure_table(cell: Cell, config: RunConfig, status: str, stop_reason: str, message: str,
                  **columns: Any) -> pd.DataFrame:
    """The one status row of a run that ended outside the runner (its worker was killed, crashed
    or timed out), written by whoever watched it. `columns` override provenance (e.g. threads)."""
    _, problem_params, _, solver_params = validate(cell)
    identity, run_id = cell_identity(cell, config)
    outcome = {"status": status, "stop_reason": stop_reason, "message": message, "warmup_time": float("nan")}
    table = _table([], outcome, identity, run_id, solver_params, problem_params, torch.device(identity["device"]))
    table["peak_memory_bytes"] = -1  # unknown: the process that ran it is gone
    for key, value in columns.items():
        table[key] = value
    return table


def cell_identity(cell: Cell, config: RunConfig) -> tuple[dict[str, Any], str]:
    """What makes a run unique, and its id: the name of its result file.

    Identity = problem, dataset, solver, both parameter sets, seed, device, dtype, compiled, and
    the hash of the code of the solver, the problem and every shared engine part.
    """
    problem_cls, problem_params, solver_cls, solver_params = validate(cell)
    device = resolve_device(config.device)
    identity = {
        "problem": cell.problem,
        "dataset": getattr(problem_params, "dataset", cell.problem),
        "solver": cell.solver,
        "solver_params": json.dumps(params_to_dict(solver_params), sort_keys=True),
        "problem_params": json.dumps(params_to_dict(problem_params), sort_keys=True),
        "seed": int(cell.seed),
        "device": device.type,
        "dtype": config.dtype,
        "compiled": bool(config.compile),
        "code_hash": code_hash(solver_cls, problem_cls),
        "config": json.dumps({k: v for k, v in dataclasses.asdict(config).items()
                              if k not in ("device", "dtype", "compile")
                              and not (k == "compile_steps" and v == 1)
                              and not (k == "compile_backend" and v == "inductor")}, sort_keys=True),  # ids of older runs stay
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
    return identity, f"{cell.problem}-{cell.solver}-{digest}"


def _run(problem_cls, problem_params, solver: Solver, seed: int, config: RunConfig,
         device: torch.device, dtype: torch.dtype) -> tuple[list[dict], dict]:
    rows: list[dict] = []
    outcome = {"status": "ok", "stop_reason": "", "message": "", "warmup_time": float("nan")}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        problem = build_problem(problem_cls, problem_params, device, dtype)
        reason = solver.skip(problem)
        if reason:
            outcome.update(status="skipped", stop_reason="skipped", message=reason)
            return rows, outcome
        oracles = Oracles(problem)
        clock = Clock(device)
        target_value = config.target if config.target is not None else problem_cls.target_value
        with torch.no_grad():
            # Initialization is part of a method's cost (e.g. SABA fills its memory): timed, counted.
            clock.start()
            state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(seed, device))
            clock.stop()
            init_counts, init_time = dict(oracles.calls), clock.elapsed
            unroll = config.compile_steps if config.compile else 1
            chunk = make_chunk(solver, oracles, config.compile, config.chunk_steps, device, unroll,
                               config.compile_backend)
            # Compiled: compile, then (CUDA) record the graph, on a throw-away copy of the state.
            warmup_steps = 3 * unroll if config.compile else 1
            start = clock.now()
            chunk(_clone(state), warmup_steps)
            outcome["warmup_time"] = clock.now() - start
            oracles.reset_counts()
            oracles.calls.update(init_counts)
            declared = solver.oracle_cost()

            # Evaluation points: log-spaced in steps when a step budget is given, else in time.
            if config.max_steps:
                time_grid = np.array([config.max_time])
                step_grid = np.unique(np.round(_log_grid(config.max_steps, config.n_evals, 1.0))).astype(int)
            else:
                time_grid = _log_grid(config.max_time, config.n_evals, min(1e-3, config.max_time / 1e3))
                step_grid = np.array([], dtype=int)
            steps, initial = 0, None

            def record() -> dict[str, float]:
                metrics = _evaluate(problem, solver, state)
                counts = dict(oracles.calls)
                if config.compile:  # a compiled step calls the oracles only while tracing
                    counts = {k: init_counts.get(k, 0) + v * steps for k, v in declared.items()}
                rows.append({"step": steps, "time": clock.elapsed,
                             **{f"oracle_{k}": float(counts.get(k, 0.0)) for k in ORACLE_COLUMNS},
                             "oracle_total": _weighted_total(counts, oracles),
                             "peak_memory_bytes": _peak_memory(device), **metrics})
                return metrics

            metrics = record()
            initial = metrics.get(f"objective_{problem_cls.divergence_metric}")
            while True:
                # Size the next chunk so that it ends near the next evaluation point.
                next_time = next((t for t in time_grid if t > clock.elapsed), config.max_time)
                next_step = next((s for s in step_grid if s > steps), None)
                per_step = (clock.elapsed - init_time) / steps if steps else outcome["warmup_time"]
                n = max(1, math.ceil((next_time - clock.elapsed) / max(per_step, 1e-9)))
                n = min(n, config.chunk_steps)
                if next_step is not None:
                    n = min(n, next_step - steps)
                n = unroll * math.ceil(n / unroll)  # whole compiled calls (may pass a step budget by < unroll)
                clock.start()
                state = chunk(state, n)
                clock.stop()
                steps += n

                done_time = clock.elapsed >= config.max_time
                done_steps = config.max_steps is not None and steps >= config.max_steps
                due = clock.elapsed >= next_time or (next_step is not None and steps >= next_step)
                if not (due or done_time or done_steps):
                    continue
                metrics = record()
                watched = metrics.get(f"objective_{problem_cls.divergence_metric}")
                if not _finite(state) or (watched is not None and (
                        not math.isfinite(watched) or abs(watched) > config.blowup * max(1.0, abs(initial or 0.0)))):
                    outcome.update(status="diverged", stop_reason="diverged",
                                   message=f"non-finite or blown-up iterate at step {steps}")
                    break
                reached = metrics.get(f"objective_{problem_cls.target_metric}")
                if config.stop_at_target and reached is not None and reached <= target_value:
                    outcome["stop_reason"] = "target"
                    break
                if done_steps:
                    outcome["stop_reason"] = "max_steps"
                    break
                if done_time:
                    outcome["stop_reason"] = "max_time"
                    break
    except UserError:
        raise
    except Exception as error:  # noqa: BLE001 - a failing run becomes a status row
        outcome.update(status="error", stop_reason="error", message=f"{type(error).__name__}: {error}")
    return rows, outcome


def _weighted_total(counts: dict[str, float], oracles: Oracles) -> float:
    total = 0.0
    for kind, count in counts.items():
        if kind.endswith("_full"):
            total += count * (oracles.n_outer_batches if "outer" in kind else oracles.n_inner_batches)
        else:
            total += count
    return float(total)


def _table(rows, outcome, identity, run_id, solver_params, problem_params, device) -> pd.DataFrame:
    if not rows:  # skipped or failed before the first evaluation: still one row
        rows = [{"step": 0, "time": 0.0, "oracle_total": 0.0, "peak_memory_bytes": _peak_memory(device)}]
    table = pd.DataFrame(rows)
    table["final"] = False
    table.loc[table.index[-1], "final"] = True
    for key, value in {**identity, "run_id": run_id, **outcome, "schema_version": SCHEMA_VERSION,
                       **provenance(device)}.items():
        table[key] = value
    # benchopt's core columns.
    solver_dict = params_to_dict(solver_params)
    table["objective_name"] = identity["problem"]
    table["dataset_name"] = identity["dataset"]
    table["solver_name"] = identity["solver"] + (
        "[" + ",".join(f"{k}={v}" for k, v in solver_dict.items()) + "]" if solver_dict else "")
    table["idx_rep"] = identity["seed"]
    table["stop_val"] = table["step"]
    value_column = next((c for c in ("objective_value", "objective_outer_value") if c in table), None)
    if value_column != "objective_value":
        table["objective_value"] = table[value_column] if value_column else float("nan")
    for key, value in solver_dict.items():
        table[f"p_solver_{key}"] = value
    for key, value in params_to_dict(problem_params).items():
        table[f"p_dataset_{key}"] = value
    return table
