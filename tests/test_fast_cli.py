"""The checks of the retired `--compile-backend aot` (its tests/test_aot.py), now on the fast path
(`--fast`, benchopt_bilevel/fast.py): an initial state whose entries share one tensor runs through
the exported graph and through a built library to the eager iterates without being written, and
a state that is not all tensors is refused. The retired option's error: tests/test_compiled.py.

Iterates of every solver through the exported graph (from distinct copies of the initial state):
tests/test_fast_every_solver.py; built libraries and the runner: tests/test_fast.py.
"""
from __future__ import annotations

import pytest
import torch

from benchopt_bilevel import fast, rng
from benchopt_bilevel.chunks import FastChunk, make_chunk
from benchopt_bilevel.fixtures import build_quadratic
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import get_solver

CPU = torch.device("cpu")


def _raw_start(name: str):
    """Oracles, solver `name` and its initial state as `init` returns it (entries may share storage)."""
    problem = build_quadratic()
    oracles, solver = Oracles(problem), get_solver(name)()
    with torch.no_grad():
        return oracles, solver, solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(3, CPU))


@pytest.mark.parametrize("name, first, second", [("fsla", "x", "x_prev")])
def test_an_init_that_shares_a_tensor_between_entries_gives_the_eager_iterates(name, first, second):
    # `init` may return one tensor under two keys (x_prev = x); their values part after a step.
    oracles, solver, state = _raw_start(name)
    assert state[first] is state[second] or state[first].data_ptr() == state[second].data_ptr(), \
        f"{name}'s init no longer shares {first} and {second}: pick a solver whose init does"
    before = {k: v.clone() for k, v in state.items()}
    got = fast.exported_steps(solver, oracles, state)(dict(state), 3)
    expected = make_chunk(solver, oracles, False, CPU)(dict(before), 3)
    assert list(got) == list(state)
    assert not torch.equal(expected[first], expected[second]), "the shared entries must part for this test to mean anything"
    for key, value in expected.items():
        if value.is_floating_point():
            torch.testing.assert_close(got[key], value, rtol=0, atol=1e-12)
        else:
            assert torch.equal(got[key], value), key
    assert all(torch.equal(state[k], before[k]) for k in state)  # inputs are never written


@pytest.mark.slow
def test_a_library_built_from_an_init_that_shares_a_tensor_gives_the_eager_iterates(tmp_path):
    # BiAdam's init holds one tensor as `hypergradient` and `w`. Exported as one input, AOTInductor
    # fails to build the loop; `fast.export_steps` exports distinct copies. About a minute (a build).
    oracles, solver, state = _raw_start("biadam")
    assert state["hypergradient"].data_ptr() == state["w"].data_ptr(), "BiAdam's init no longer shares: pick another"
    before = {k: v.clone() for k, v in state.items()}
    chunk = FastChunk(solver, oracles, CPU, torch.float64, tmp_path)
    got = chunk(dict(state), 5)
    assert chunk.note == "" and chunk.cache_hit is False
    expected = make_chunk(solver, oracles, False, CPU)(dict(before), 5)
    for key, value in expected.items():
        if value.is_floating_point():
            torch.testing.assert_close(got[key], value, rtol=0, atol=1e-12)
        else:
            assert torch.equal(got[key], value), key
    assert all(torch.equal(state[k], before[k]) for k in state)  # inputs are never written


def test_a_state_that_is_not_all_tensors_is_refused():
    oracles, solver, state = _raw_start("soba")
    with pytest.raises(TypeError, match="state of tensors"):
        fast.export_steps(solver, oracles, {**state, "t": 0})

