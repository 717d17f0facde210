"""Every registered solver on the fast path (benchopt_bilevel/fast.py) gives its eager iterates.

On the small float64 quadratic of the tests, n steps through the exported graph (the one
AOTInductor builds: a while_loop over steps, the float and int hyperparameters as a tensor
input) must match n eager steps within 1e-12 in every floating entry of the state, and exactly
in the others (keys, counters). Host-side solvers have no fast path and skip with their reason.
Built libraries are checked in tests/test_fast.py (SOBA, SABA, SUSTAIN's zero-trip loops) and
tests/test_fast_int_params.py (one library at several loop counts), and every library is checked
against eager steps before a run uses it (`chunks.library_mismatch`).
"""
from __future__ import annotations

import pytest
import torch

from conftest import eager_steps, start_state

from benchopt_bilevel import fast
from benchopt_bilevel.fixtures import build_quadratic
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import get_solver, solvers
from benchopt_bilevel.solver import Solver, State

TOLERANCE = 1e-12
STEPS = 4
# Solvers whose step changes after a number of steps, also compared past that number.
LONGER = {"lancbio": 24}  # its Krylov basis grows every dim_freq = 20 steps


@pytest.fixture(scope="module")
def problem():
    return build_quadratic()



def _assert_same_iterates(got: State, expected: State, what: str) -> None:
    assert sorted(got) == sorted(expected), what
    for k, value in expected.items():
        if value.is_floating_point():
            difference = float((got[k] - value).abs().max()) if value.numel() else 0.0
            assert difference <= TOLERANCE, f"{what}: max |fast - eager| of {k} is {difference:.2e}"
        else:
            assert torch.equal(got[k], value), f"{what}: {k} differs"


def _runnable(name: str, problem) -> Solver:
    solver = get_solver(name)()
    if solver.host_side:
        pytest.skip(f"{name} runs on the host: {solver.host_side}")
    reason = solver.skip(problem)
    if reason:
        pytest.skip(reason)
    return solver


@pytest.mark.parametrize("name", sorted(solvers()))
def test_exported_steps_give_the_eager_iterates(name, problem):
    solver = _runnable(name, problem)
    state = start_state(solver, problem)
    chunk = fast.exported_steps(solver, Oracles(problem), state)  # one graph for every n
    for n_steps in (STEPS, LONGER.get(name)):
        if n_steps:
            expected = eager_steps(solver, problem, dict(state), n_steps)
            _assert_same_iterates(chunk(dict(state), n_steps), expected, f"{name}, {n_steps} steps")
