"""String choices a search draws (AmIGO's linear solver) are inputs of a fast build, so one build
serves every trial of a search. F2SA's inner optimizer, a variant no search draws, is switched
the same way here: its options are loops of different bodies, so it checks a switch over nested
loops.

A solver lists them in `input_choices`; in the build they hold a `linalg.Selected` (the index of
the value among the search space's options) and the step branches with `linalg.switch` (torch's
`cond`). The graphs below are exported once from one value and run with the hyperparameters of
each other value, against that value's eager iterates.
"""
from __future__ import annotations

import pytest
import torch

from conftest import eager_steps, start_state

from benchopt_bilevel import fast
from benchopt_bilevel.fixtures import build_quadratic
from benchopt_bilevel.linalg import Selected, switch
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import get_solver, solvers
from benchopt_bilevel.solver import Choice, Solver, State
from benchopt_bilevel.stochastic_inner import INNER_OPTIMIZERS

TOLERANCE = 1e-12
N_STEPS = 3


@pytest.fixture(scope="module")
def problem():
    return build_quadratic()



def _assert_same_iterates(got: State, expected: State, label: str) -> None:
    for k, value in expected.items():
        if value.is_floating_point():
            difference = float((got[k] - value).abs().max())
            assert difference <= TOLERANCE, f"{label}: max |fast - eager| of {k} is {difference:.2e}"
        else:
            assert torch.equal(got[k], value), f"{label}: {k}"


def test_every_input_choice_is_a_choice_of_strings_in_the_search_space():
    listed = [cls for cls in solvers().values() if cls.input_choices]
    assert "amigo" in {cls.name for cls in listed}
    for cls in listed:
        for name in cls.input_choices:
            dimension = cls.search_space.get(name)
            assert isinstance(dimension, Choice), (cls.name, name)
            assert all(isinstance(v, str) for v in dimension.values), (cls.name, name)
            assert fast.choice_options(cls(), name) == tuple(dimension.values)


def test_an_input_choice_leaves_the_build_identity_and_enters_as_its_index():
    sgd, cg = get_solver("amigo")(linear_solver="sgd"), get_solver("amigo")(linear_solver="cg")
    assert fast.static_identity(sgd) == fast.static_identity(cg)
    assert "linear_solver" not in fast.static_identity(sgd)
    position = fast.tensor_fields(sgd).index("linear_solver")
    assert float(fast.hyperparameter_tensor(sgd)[position]) == 0.0  # ("sgd", "cg")
    assert float(fast.hyperparameter_tensor(cg)[position]) == 1.0
    # AmIGO's inner optimizer is not in its search space: it still shapes the build.
    assert fast.static_identity(sgd)["inner"] == "sgd"


def test_a_selected_choice_cannot_be_compared_in_python():
    chosen = Selected(torch.tensor(1), ("sgd", "cg"))
    with pytest.raises(TypeError, match="switch"):
        _ = chosen == "cg"
    with pytest.raises(TypeError, match="switch"):
        _ = "cg" in ("sgd", chosen)


def test_switch_runs_only_the_chosen_branch_eager():
    ran = []

    def branch(name):
        return lambda a: (ran.append(name) or a + len(name),)

    (out,) = switch("cg", {"sgd": branch("sgd"), "cg": branch("cg")}, torch.zeros(2))
    assert ran == ["cg"] and torch.equal(out, torch.full((2,), 2.0))
    with pytest.raises(KeyError):
        switch("newton", {"sgd": branch("sgd")}, torch.zeros(2))


def _options(cls: type[Solver], field: str) -> tuple[str, ...]:
    choice = cls.search_space.get(field)
    return choice.values if choice is not None else tuple(INNER_OPTIMIZERS)  # F2SA's inner: a variant


def _instance(cls: type[Solver], field: str, value: str) -> Solver:
    solver = cls(**{field: value})
    # F2SA neither lists its inner optimizer (build time) nor searches it (a variant).
    solver.input_choices = (field,)
    solver.search_space = {**cls.search_space, field: Choice(_options(cls, field))}
    return solver


# F2SA's three inner optimizers are loops of different bodies (SGD, AI-SARAH, SRKC): the switch
# over nested loops is checked there, although F2SA does not declare it (see solvers/f2sa.py).
@pytest.mark.parametrize("solver_name, field", [("amigo", "linear_solver"), ("f2sa", "inner")])
def test_one_exported_graph_runs_every_option(problem, solver_name, field):
    cls = get_solver(solver_name)
    options = _options(cls, field)
    built = _instance(cls, field, options[0])
    state = start_state(built, problem, seed=5)
    keys = list(state)
    module = fast.export_steps(built, Oracles(problem), state).module()
    finals = {}
    for value in options:
        run = _instance(cls, field, value)
        with torch.no_grad():
            out = module(torch.tensor(N_STEPS), fast.hyperparameter_tensor(run), *(state[k] for k in keys))
        got = dict(zip(keys, out))
        _assert_same_iterates(got, eager_steps(run, problem, state, N_STEPS), f"{solver_name}[{field}={value}]")
        finals[value] = got["x"]
    # The options are different methods: the graph did run a different branch for each.
    values = list(finals)
    assert all(not torch.allclose(finals[a], finals[b]) for a in values for b in values if a < b)
