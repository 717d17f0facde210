"""Does a solver run on the fast path, and give the eager iterates? (benchopt_bilevel/fast.py)

    python scripts/check_fast.py                     # every registered solver, exported graph
    python scripts/check_fast.py soba amigo          # named solvers
    python scripts/check_fast.py --mode build soba   # build the AOTInductor library (minutes each)
    python scripts/check_fast.py --steps 20 lancbio  # past a solver's period

For each solver, on the small float64 quadratic of the tests: `--steps` eager steps (4 by
default) against the same steps through the exported graph (`--mode export`: seconds, the graph
AOTInductor would build, run by PyTorch's interpreter) or through the built library
(`--mode build`). Prints OK or FAIL (the difference exceeds --tolerance, or the first line of the
error: a Python branch on a tensor value, a state that is not all tensors), SKIP for solvers
that run on the host or do not take the problem, the export (and build) seconds and the largest
|fast − eager| over the state's floating entries. Exits 1 when any solver fails.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time

import torch

from benchopt_bilevel import fast, rng
from benchopt_bilevel.fixtures import build_quadratic
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import get_solver, solvers
from benchopt_bilevel.solver import Solver, State


def eager_steps(solver: Solver, problem, state: State, n_steps: int) -> State:
    oracles = Oracles(problem)
    with torch.no_grad():
        for _ in range(n_steps):
            state = solver.step(oracles, state)
    return state


def fast_steps(solver: Solver, problem, state: State, n_steps: int, mode: str) -> tuple[State, str]:
    """The state after `n_steps` on the fast path, and what it took to obtain (seconds)."""
    oracles, start = Oracles(problem), time.perf_counter()
    if mode == "export":
        chunk = fast.exported_steps(solver, oracles, state)
        timing = f"export {time.perf_counter() - start:6.1f} s"
    else:
        program = fast.export_steps(solver, oracles, state)
        exported = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            package = fast.build_library(program, f"{folder}/steps.pt2")
            chunk = fast.steps_function(fast.load_library(package), solver, list(state))
        timing = (f"export {exported - start:6.1f} s  build {time.perf_counter() - exported:6.1f} s")
    return chunk(dict(state), n_steps), timing


def largest_difference(got: State, expected: State) -> float:
    """max |got − expected| over the floating entries; inf where another entry differs."""
    if sorted(got) != sorted(expected):
        return float("inf")
    worst = 0.0
    for k, value in expected.items():
        if value.is_floating_point():
            worst = max(worst, float((got[k] - value).abs().max()) if value.numel() else 0.0)
        elif not torch.equal(got[k], value):
            return float("inf")
    return worst


def check(name: str, problem, n_steps: int, mode: str, tolerance: float) -> tuple[bool, str]:
    """(passed, one line of report) for the solver `name`."""
    solver = get_solver(name)()
    if solver.host_side:
        return True, f"{name:14s} SKIP runs on the host: {solver.host_side[:70]}"
    reason = solver.skip(problem)
    if reason:
        return True, f"{name:14s} SKIP {reason[:80]}"
    try:
        with torch.no_grad():
            state = solver.init(Oracles(problem), problem.x0(), problem.y0(), rng.make_key(3))
        state = {k: v.clone() for k, v in state.items()}
        got, timing = fast_steps(solver, problem, state, n_steps, mode)
    except Exception as exc:  # noqa: BLE001 - report any failure in one line
        first = str(exc).strip().splitlines()
        return False, f"{name:14s} FAIL {type(exc).__name__}: {first[0][:150] if first else ''}"
    error = largest_difference(got, eager_steps(solver, problem, state, n_steps))
    verdict = "OK  " if error <= tolerance else "FAIL"
    return error <= tolerance, f"{name:14s} {verdict} {timing}  max |fast - eager| {error:.1e}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("solvers", nargs="*", help="solver names (default: every registered solver)")
    parser.add_argument("--mode", choices=("export", "build"), default="export")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--tolerance", type=float, default=1e-12)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    problem = build_quadratic()
    failed = []
    for name in args.solvers or list(solvers()):
        passed, line = check(name, problem, args.steps, args.mode, args.tolerance)
        print(line, flush=True)
        if not passed:
            failed.append(name)
    if failed:
        print(f"failed: {' '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
