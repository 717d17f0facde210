"""Run one cell: (problem, solver, params, seed, device, dtype) -> result rows.

The runner owns the loop, the clock, the evaluation schedule and the stop rules:
- steps run in chunks between evaluation points; a chunk is up to `chunk_steps` calls of the
  pure `solver.step`, eager or compiled (`compile=True`: torch.compile of the step, or of
  `compile_steps` consecutive steps as one graph, which shares the per-call overhead of a
  compiled function at the price of a longer compilation);
- the clock synchronizes the device before every read and runs only around chunks: batch
  sampling (inside the step) is timed, evaluation is not;
- without --compile, `step_path` chooses eager steps, the fast path (`FastChunk`: n steps per
  call of a library from the on-disk build cache, CPU) or "auto": fast when the eager warm-up
  step costs less than `FAST_SECONDS_PER_CALL` per declared oracle call, decided by the first run
  of a build identity and kept for the others (`build_cache.remembered_choice`). The path taken is the
  row's `path` column (eager, compiled or fast), `build_cache_hit` says whether a fast library was reused (None otherwise),
  and a fast path that cannot export or build leaves a note in `message` and runs eager;
- a warm-up (one step eager, three compiled or fast) runs on a copy of the initial state; its time
  (compilation or build included) is stored in `warmup_time`, never hidden and never added to `time`;
  a compiled step that fails there (torch's own limits, e.g. CUDA graphs around a while_loop)
  leaves the reason in `message` and the run goes on eager (`path` eager, `compiled` False);
- evaluation points are log-spaced in steps when `max_steps` is given, else in time;
- the run stops on max_time, max_steps, the target (if asked), divergence or an exception, each
  recorded as a status with a message. A failed run still yields its rows.

What a cell is and how its problem is built: `cells.py`; chunks and their compilation:
`chunks.py`; the run's id: `provenance.cell_identity`; the result schema: `results.py`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from . import build_cache, rng
from . import cells
from .cells import DTYPES, Cell, RunConfig, build_problem, resolve_device, validate
from .chunks import FastChunk, compiles, eager_note, first_line, make_chunk
from .clock import Clock
from .errors import UserError
from .memory import PeakMemory
from .oracles import Oracles
from .problem import Problem
from .provenance import cell_identity
from .results import no_rows, oracle_columns, result_table, write_run
from .solver import Solver, State


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
        exact, estimate = exact_fn(x).to(torch.float64), estimate.to(torch.float64)
        error = torch.sum((estimate - exact) ** 2)  # absolute: ∇h → 0 near x*
        metrics["hypergradient_error"] = float(error)
        # The direction alone (what a backward pass that is cheap but biased keeps or loses);
        # NaN before the first estimate (a zero vector has no direction).
        norms = float(torch.linalg.vector_norm(estimate) * torch.linalg.vector_norm(exact))
        metrics["hypergradient_cosine"] = float(torch.sum(estimate * exact)) / norms if norms > 0 else float("nan")
    return metrics


def _eager_step_time(chunk, state: State, clock: Clock) -> float:
    """Seconds of one more eager step on a copy of `state` (the first step pays one-off costs)."""
    copy = _clone(state)
    start = clock.now()
    chunk(copy, 1)
    return clock.now() - start


def _wants_fast(config: RunConfig, solver: Solver, device: torch.device, first_step: float,
                eager_step: Callable[[], float], calls_per_step: Callable[[], float],
                identity: Callable[[], dict]) -> bool:
    """Whether the run tries the fast path: asked ("fast"; a host-side solver then runs eager
    with a note, `FastChunk`), or "auto" and an eager step (the faster of the warm-up's and one
    more) costs less than the threshold per declared oracle call. Auto never takes it for a
    host-side step or on CUDA (there the path is --compile). Auto's choice is made once per build
    identity, by its first run, and kept in the build cache (`build_cache.remembered_choice`):
    the other seeds and trials of a solver take the same path, whatever their own warm-up says."""
    if config.step_path == "fast":
        return True
    if config.step_path != "auto" or solver.host_side is not None or device.type != "cpu":
        return False

    def decide() -> dict:
        seconds = min(first_step, eager_step()) / max(1.0, calls_per_step())
        return {"path": "fast" if seconds < cells.FAST_SECONDS_PER_CALL else "eager",
                "eager_seconds_per_call": seconds, "threshold": cells.FAST_SECONDS_PER_CALL}

    choice, _ = build_cache.remembered_choice(identity(), decide)
    return choice["path"] == "fast"


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
    memory = PeakMemory(device)
    rows, outcome = _run(problem_cls, problem_params, solver, cell.seed, config, device, dtype, memory)
    rows = rows or no_rows(memory.peak(), memory.method)  # skipped or failed before the first evaluation
    table = result_table(rows, outcome, identity, run_id, solver_params, problem_params, device,
                         problem_cls.value_metric)
    if output_dir is not None:
        write_run(table, output_dir, run_id)
    return table


def _run(problem_cls, problem_params, solver: Solver, seed: int, config: RunConfig,
         device: torch.device, dtype: torch.dtype,
         memory: PeakMemory | None = None) -> tuple[list[dict], dict]:
    rows: list[dict] = []
    outcome = {"status": "ok", "stop_reason": "", "message": "", "warmup_time": float("nan"),
               "path": "eager", "build_cache_hit": None}
    memory = memory or PeakMemory(device)
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
            # Memory is measured from here (the problem's data are not the method's) over the timed
            # parts: paused for the warm-up's copy of the state and for evaluations (memory.py).
            memory.start()
            clock.start()
            state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(seed, device))
            clock.stop()
            # Distinct tensors, like the warm-up's copy: an init that returns one tensor under two
            # keys (x_prev = x) would otherwise recompile the step inside the timed loop (dynamo
            # guards on aliasing between inputs).
            state = _clone(state)
            init_counts, init_time = dict(oracles.calls), clock.elapsed
            # A host-side step runs eager under --compile: its rows say so (message, `compiled`).
            compiled = compiles(solver, config.compile)
            if config.compile and not compiled:
                outcome.update(message=eager_note(solver), compiled=False)
            unroll = config.compile_steps if compiled else 1
            chunk = make_chunk(solver, oracles, compiled, device, unroll)
            # Compiled: compile, then (CUDA) record the graph, on a throw-away copy of the state.
            warmup_steps = 3 * unroll if compiled else 1
            memory.pause()
            start = clock.now()
            try:
                chunk(_clone(state), warmup_steps)
            except Exception as error:  # noqa: BLE001 - a compiler's failure: the run goes on eager
                if not compiled:
                    raise
                # torch's own limits (e.g. CUDA graphs around a while_loop, torch 2.11): the rows
                # say the run is eager and why, so it is never ranked as compiled.
                compiled, unroll = False, 1
                outcome.update(message=f"ran eager: the compiled step failed ({first_line(error)})", compiled=False)
                chunk = make_chunk(solver, oracles, False, device)
                chunk(_clone(state), 1)
            outcome["warmup_time"] = clock.now() - start
            if compiled:
                outcome["path"] = "compiled"
            elif not config.compile and _wants_fast(config, solver, device, outcome["warmup_time"], lambda: _eager_step_time(chunk, state, clock),
                             lambda: oracles.total_calls(solver.oracle_cost(oracles.facts)),
                             lambda: build_cache.build_identity(solver, problem, state, dtype, device)):
                fast_chunk = FastChunk(solver, oracles, device, dtype)
                start = clock.now()
                fast_chunk(_clone(state), 3)  # builds or loads the library: in warmup_time
                outcome["warmup_time"] += clock.now() - start
                if fast_chunk.note:
                    outcome["message"] = fast_chunk.note
                else:
                    chunk, outcome["path"], outcome["build_cache_hit"] = fast_chunk, "fast", fast_chunk.cache_hit
            counted = outcome["path"] != "eager"  # compiled and fast steps call the oracles only while tracing
            memory.resume()
            oracles.reset_counts()
            oracles.calls.update(init_counts)

            # Evaluation points: log-spaced in steps when a step budget is given, else in time.
            if config.max_steps:
                time_grid = np.array([config.max_time])
                step_grid = np.unique(np.round(_log_grid(config.max_steps, config.n_evals, 1.0))).astype(int)
            else:
                time_grid = _log_grid(config.max_time, config.n_evals, min(1e-3, config.max_time / 1e3))
                step_grid = np.array([], dtype=int)
            steps, initial = 0, None

            def record() -> dict[str, float]:
                memory.pause()
                metrics = _evaluate(problem, solver, state)
                counts = dict(oracles.calls)
                if counted:  # a compiled step calls the oracles only while tracing: its declared cost
                    counts = dict(init_counts)
                    for kind, count in solver.cumulative_oracle_cost(oracles.facts, steps).items():
                        counts[kind] = counts.get(kind, 0) + count
                rows.append({"step": steps, "time": clock.elapsed,
                             **oracle_columns(counts, oracles.total_calls(counts)),
                             "peak_memory_bytes": memory.peak(), "memory_method": memory.method, **metrics})
                memory.resume()
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
