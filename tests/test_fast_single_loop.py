"""The single-loop and variance-reduced solvers on the fast path: the exported steps (the graph an
AOTInductor library is built from, run without compiling) give the eager iterates.

On the quadratic (8 inner + 8 outer blocks) SRBA's and VRBO's period_frac of 1/8 is a period of
2 iterations, and one of their steps is one period: three steps cross periods.
"""
from __future__ import annotations

import pytest
import torch

from benchopt_bilevel import fast, rng
from benchopt_bilevel.fixtures import build_quadratic
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import get_solver

SOLVERS = {
    "bsa": {"n_inner_steps": 2, "n_neumann_terms": 3},
    "fsla": {},
    "mrbo": {"n_neumann_steps": 2},
    "sustain": {"n_neumann_terms": 3},
    "srba": {"period_frac": 1 / 8},
    "vrbo": {"period_frac": 1 / 8, "n_inner_steps": 2, "n_neumann_steps": 2},
    "saba": {},
    "soba": {},
    "ttsa": {},
    "biadam": {},
}
N_STEPS = 3


def _start(solver, oracles, problem, seed=3):
    with torch.no_grad():
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(seed))
    return {k: v.clone() for k, v in state.items()}  # distinct tensors, as a runner's state


def _eager(solver, oracles, state, n_steps):
    with torch.no_grad():
        for _ in range(n_steps):
            state = solver.step(oracles, state)
    return state


def _assert_close(got, expected):
    assert set(got) == set(expected)
    for k in expected:
        if expected[k].is_floating_point():
            assert float((got[k] - expected[k]).abs().max()) <= 1e-12, k
        else:
            assert torch.equal(got[k], expected[k]), k


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_exported_steps_give_the_eager_iterates(name):
    """SRBA's export serves another period too: period_frac is an input of the graph, so q = 2
    and q = 5 come from one exported program."""
    problem = build_quadratic()
    solver = get_solver(name)(**SOLVERS[name])
    oracles = Oracles(problem)
    state = _start(solver, oracles, problem)
    keys = list(state)
    module = fast.export_steps(solver, oracles, state).module()
    others = [get_solver(name)(**{**SOLVERS[name], "period_frac": 5 / 16})] if name == "srba" else []
    for run in [solver, *others]:
        with torch.no_grad():
            out = module(torch.tensor(N_STEPS), fast.hyperparameter_tensor(run), *(state[k] for k in keys))
        got = dict(zip(keys, out))
        _assert_close(got, _eager(run, oracles, dict(state), N_STEPS))
        assert not torch.equal(got["x"], state["x"])  # the steps moved x: a comparison of something
    assert [run.period(oracles.facts) for run in others] == ([5] if name == "srba" else [])
