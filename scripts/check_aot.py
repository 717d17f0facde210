"""Does a solver compile ahead of time, and give the eager iterates? (`--compile-backend aot`)

    python scripts/check_aot.py soba saba       # named solvers
    python scripts/check_aot.py                 # every registered solver (tens of minutes)

For each solver: 4 steps on the small float64 quadratic of the tests, eager and through
`aot.compile_ahead`, then the build time and the largest difference of x and y. A solver whose
step cannot be exported (a Python branch on a tensor value, a state that is not all tensors)
prints FAIL with the first line of the reason.
"""
from __future__ import annotations

import sys
import time

import torch

from benchopt_bilevel import rng
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import get_problem, get_solver, solvers
from benchopt_bilevel.chunks import make_chunk
from benchopt_bilevel.fixtures import WELL_CONDITIONED  # the conformance suite's quadratic

CPU = torch.device("cpu")


def check(name: str, problem) -> str:
    solver = get_solver(name)()
    reason = solver.skip(problem)
    if reason:
        return f"{name:14s} SKIP {reason[:80]}"
    oracles, start = Oracles(problem), time.perf_counter()
    try:
        with torch.no_grad():
            state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(3, CPU))
            expected = make_chunk(solver, oracles, False, CPU)(dict(state), 4)
            got = make_chunk(solver, oracles, True, CPU, backend="aot")(dict(state), 4)
    except Exception as exc:  # noqa: BLE001 - report any failure in one line
        return f"{name:14s} FAIL {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
    error = max(float((got[k] - expected[k]).abs().max()) for k in ("x", "y") if k in got)
    return f"{name:14s} OK   build and run {time.perf_counter() - start:6.1f} s   max |aot - eager| {error:.1e}"


def main(names: list[str]) -> None:
    torch.set_num_threads(1)
    cls = get_problem("quadratic")
    problem = cls(cls.Params(**WELL_CONDITIONED), torch.Generator().manual_seed(0)).to(CPU, torch.float64)
    for name in names or list(solvers()):
        print(check(name, problem), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
