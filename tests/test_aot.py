"""Ahead-of-time compiled steps (benchopt_bilevel/aot.py): the library computes what the Python
function computes, call after call, whatever the aliasing of the first state."""
from __future__ import annotations

import pytest
import torch

from benchopt_bilevel.aot import compile_ahead


def _steps(state):
    return {"a": state["a"] + 1.0, "b": 2.0 * state["b"], "n": state["n"] + 1}


def test_shared_tensors_in_the_first_state_stay_separate_inputs():
    # Two keys holding one tensor at the start (as a solver's init may return) must not be
    # merged into one input: their values part after the first step.
    shared = torch.ones(3)
    state = {"a": shared, "b": shared, "n": torch.zeros((), dtype=torch.int64)}
    run = compile_ahead(_steps, state)
    expected, got = dict(state), dict(state)
    for _ in range(3):
        expected, got = _steps(expected), run(got)
    assert list(got) == ["a", "b", "n"] and int(got["n"]) == 3
    torch.testing.assert_close(got["a"], torch.full((3,), 4.0))
    torch.testing.assert_close(got["b"], torch.full((3,), 8.0))
    assert torch.equal(shared, torch.ones(3))  # inputs are never written


def test_a_state_that_is_not_all_tensors_is_refused():
    with pytest.raises(TypeError, match="state of tensors"):
        compile_ahead(_steps, {"a": torch.ones(1), "b": torch.ones(1), "n": 0})
