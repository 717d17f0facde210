"""The compute-bound side: SOBA and SABA steps on the literature-size quadratic against the time
it takes to read the data a step reads, measured in one process.

The literature-size quadratic (problems/quadratic.py defaults: n = m = 1024, d = 100, batch 64)
in float32 on one thread. A SOBA or SABA step reads one inner block of A and C and one outer
block of F, H and K: five blocks of 64 d×d matrices (12.8 MB), plus four blocks of vectors (100 kB).
Two memory-read baselines, over the same blocks in the same order as the steps draw them:

- floor: a sum over each stored block (one streaming read, no copy), the strict baseline;
- floor_gather: `index_select` of each block then a sum (a gather that copies, then a read),
  what a step that gathers its blocks first would pay at least.

Steps run eager (`solver.step`) and on the fast path (benchopt_bilevel/fast.py: the solver's
steps exported as one loop and built by AOTInductor; the build time goes to extra_info). The
measurements are interleaved round by round (floor, step, floor, step...) and a ratio is the
median over rounds of step / floor within a round, so that the load of a shared machine cancels.
Run with `pytest speed/test_bench_growth.py --benchmark-only` (a build takes 2 minutes on an idle
2-core machine, over 10 on a loaded one); BENCH_GROWTH_FAST=0 measures the eager steps alone.
TARGET is the issue's: fast-path steps within 1.3× the floor.
"""
from __future__ import annotations

import os
import statistics
import time
from typing import Callable

import pytest
import torch

from benchopt_bilevel import fast, rng
from benchopt_bilevel.fixtures import build_problem
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import get_solver

TARGET = 1.3  # fast-path step / floor
ROUNDS = int(os.environ.get("BENCH_GROWTH_ROUNDS", "15"))
STEPS_PER_ROUND = 20
MATRICES = ("A", "C", "F", "H", "K")  # the five d×d blocks a SOBA or SABA step reads
SOLVERS = ("soba", "saba")
FAST = os.environ.get("BENCH_GROWTH_FAST", "1") != "0"  # 0: eager only, no build (a quick look)


@pytest.fixture(scope="module")
def problem():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # a batch-64 step is too small to share between threads
    yield build_problem("quadratic", torch.float32)
    torch.set_num_threads(previous)


def block_sequence(problem, count: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(inner, outer) block indices drawn as the solvers draw them (rng.randint of split keys)."""
    key, blocks = rng.make_key(seed), []
    for _ in range(count):
        key, k_inner, k_outer = rng.split(key, 3)
        blocks.append((rng.randint(k_inner, problem.n_inner_batches), rng.randint(k_outer, problem.n_outer_batches)))
    return blocks


def floor_reader(problem, gather: bool) -> Callable[[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
    """Reads the five blocks of one step: a sum over each (a view, or an index_select copy)."""
    stored = [(problem.samples_last(name), name in "AC") for name in MATRICES]

    def read(blocks: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        total = torch.zeros((), dtype=problem.dtype)
        for data, inner in stored:
            index = blocks[0] if inner else blocks[1]
            block = data.index_select(0, index.view(1)) if gather else data.select(0, int(index))
            total = total + block.sum()
        return total

    return read


def seconds_per_step(run: Callable[[], object], steps: int) -> float:
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) / steps


def interleaved(runs: dict[str, Callable[[], object]], steps: int, rounds: int) -> dict[str, list[float]]:
    """Seconds per step of each run, `rounds` times, the runs taking turns within a round."""
    for run in runs.values():  # warm-up
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            times[name].append(seconds_per_step(run, steps))
    return times


def median_ratio(times: dict[str, list[float]], numerator: str, denominator: str) -> float:
    return statistics.median(a / b for a, b in zip(times[numerator], times[denominator]))


def floor_runs(problem, steps: int) -> dict[str, Callable[[], object]]:
    sequence = block_sequence(problem, steps)
    runs = {}
    for name, gather in (("floor", False), ("floor_gather", True)):
        read = floor_reader(problem, gather)
        runs[name] = lambda read=read: [read(blocks) for blocks in sequence]
    return runs


def solver_runs(problem, name: str, steps: int, build_dir: str) -> tuple[dict[str, Callable[[], object]], dict]:
    """Eager and fast-path runs of `steps` steps of solver `name`, and the build's facts."""
    solver, oracles = get_solver(name)(), Oracles(problem)
    with torch.no_grad():
        start = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0))
    start = {k: v.clone() for k, v in start.items()}
    eager_state, fast_state = [dict(start)], [dict(start)]

    def eager() -> None:
        with torch.no_grad():
            for _ in range(steps):
                eager_state[0] = solver.step(oracles, eager_state[0])

    if not FAST:
        return {f"{name}_eager": eager}, {}
    began = time.perf_counter()
    path = fast.build_library(fast.export_steps(solver, oracles, start), os.path.join(build_dir, f"{name}.pt2"))
    build_s = time.perf_counter() - began
    chunk = fast.steps_function(fast.load_library(path), solver, list(start))

    def compiled() -> None:
        fast_state[0] = chunk(fast_state[0], steps)

    # The library gives the eager iterates (same keys, same blocks) before it is timed.
    with torch.no_grad():
        expected = dict(start)
        for _ in range(3):
            expected = solver.step(oracles, expected)
    got = chunk(dict(start), 3)
    error = max(float((got[k] - expected[k]).abs().max()) for k in start if start[k].is_floating_point())
    return {f"{name}_eager": eager, f"{name}_fast": compiled}, {"build_s": build_s, "max_abs_difference": error}


def test_steps_against_memory_floor(benchmark, problem, tmp_path_factory):
    """SOBA and SABA per step, eager and fast, over the floors of the same run."""
    build_dir = str(tmp_path_factory.mktemp("builds"))
    runs, facts = floor_runs(problem, STEPS_PER_ROUND), {}
    for name in SOLVERS:
        solver_run, facts[name] = solver_runs(problem, name, STEPS_PER_ROUND, build_dir)
        runs.update(solver_run)
    times: dict[str, list[float]] = {}
    benchmark.pedantic(lambda: times.update(interleaved(runs, STEPS_PER_ROUND, ROUNDS)), rounds=1, iterations=1)

    info = {f"{name}_ms": 1e3 * statistics.median(t) for name, t in times.items()}
    for run in runs:
        if run != "floor":
            info[f"{run}_over_floor"] = median_ratio(times, run, "floor")
    for name in SOLVERS:
        info[f"{name}_eager_over_floor_gather"] = median_ratio(times, f"{name}_eager", "floor_gather")
        if FAST:
            info[f"{name}_fast_over_floor_gather"] = median_ratio(times, f"{name}_fast", "floor_gather")
            info[f"{name}_build_s"] = facts[name]["build_s"]
            info[f"{name}_fast_max_abs_difference"] = facts[name]["max_abs_difference"]
    info.update(rounds=ROUNDS, steps_per_round=STEPS_PER_ROUND, threads=torch.get_num_threads(),
                data_mb_per_step=sum(problem.samples_last(n)[0].numel() for n in MATRICES) * 4 / 1e6)
    benchmark.extra_info.update(info)
    print("\n" + "\n".join(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}" for k, v in info.items()))

    if not FAST:
        return
    for name in SOLVERS:
        assert facts[name]["max_abs_difference"] < 1e-4, f"{name}: the library's iterates differ from eager"
    slow = {name: round(info[f"{name}_fast_over_floor"], 2) for name in SOLVERS
            if info[f"{name}_fast_over_floor"] > TARGET}
    assert not slow, f"fast-path steps over {TARGET}x the memory-read floor: {slow}"
