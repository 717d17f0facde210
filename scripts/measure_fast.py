"""Eager vs fast µs per step, cold build and cache hit, for PROBLEM:SOLVER pairs (docs/compile.md).

    OMP_NUM_THREADS=1 python scripts/measure_fast.py logreg:soba logreg:saba quadratic:soba

float32, one thread. For each pair, from one state: eager steps (`chunks.make_chunk`), then a
`FastChunk` whose first call builds the library (or loads it: the build cache is
$MEASURE_CACHE when set, else a fresh directory), the best of 3 timings of 2000 steps in one
call and of 20 calls of 32 steps (the runner's default chunk), then a second `FastChunk` on the
same cache (a hit: one load), and µs per step by steps per call. The machine's load moves absolute figures: compare within a line.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from benchopt_bilevel import rng  # noqa: E402
from benchopt_bilevel.cells import build_problem  # noqa: E402
from benchopt_bilevel.chunks import FastChunk, make_chunk  # noqa: E402
from benchopt_bilevel.oracles import Oracles  # noqa: E402
from benchopt_bilevel.params import build_params, parse_spec  # noqa: E402
from benchopt_bilevel.registry import get_problem, get_solver  # noqa: E402

CPU = torch.device("cpu")


def _seconds(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def measure(problem_spec: str, solver_name: str, steps: int = 2000) -> str:
    name, params = parse_spec(problem_spec)
    cls = get_problem(name)
    problem = build_problem(cls, build_params(cls.Params, params, name), CPU, torch.float32)
    solver = get_solver(solver_name)()
    oracles = Oracles(problem)
    with torch.no_grad():
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0))
        state = {k: v.clone() for k, v in state.items()}
        eager = make_chunk(solver, oracles, False, CPU)
        start = eager(dict(state), 5)
        eager_us = min(_seconds(lambda: eager(start, steps)) for _ in range(3)) / steps * 1e6
        directory = Path(os.environ.get("MEASURE_CACHE") or tempfile.mkdtemp(prefix="fast-cache-"))
        chunk = FastChunk(solver, oracles, CPU, torch.float32, directory)
        first_call = _seconds(lambda: chunk(dict(state), 1))
        if chunk.note:
            return f"{problem_spec} {solver_name}: {chunk.note}"
        built = "cold build" if chunk.cache_hit is False else "load (hit)"
        fast_us = min(_seconds(lambda: chunk(start, steps)) for _ in range(3)) / steps * 1e6
        fast32_us = min(_seconds(lambda: chunk(start, 32)) for _ in range(20)) / 32 * 1e6
        by_length = {n: min(_seconds(lambda: chunk(start, n)) for _ in range(5)) / n * 1e6
                     for n in (32, 128, 512, 2000)}
        again = FastChunk(solver, oracles, CPU, torch.float32, directory)
        hit = _seconds(lambda: again(dict(state), 1))
    return (f"{problem_spec} {solver_name}: eager {eager_us:.1f} µs/step; fast {fast_us:.1f} µs/step "
            f"({steps} per call), {fast32_us:.1f} (32 per call); eager/fast {eager_us / fast32_us:.1f} (32 per "
            f"call); first call {first_call:.1f} s ({built}); hit {hit:.2f} s; µs/step by steps per call (best "
            f"of 5): " + ", ".join(f"{n}: {us:.1f}" for n, us in by_length.items()))


if __name__ == "__main__":
    torch.set_num_threads(1)
    for pair in sys.argv[1:]:
        print(measure(*pair.split(":")), flush=True)
