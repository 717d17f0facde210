"""Int hyperparameters (loop counts) are inputs of a fast build, so one build serves a search.

A tuning search samples inner counts (AmIGO's n_inner_steps, stocBiO's n_neumann_steps, ...):
were they constants of the graph, every distinct value would cost a build. They enter the
hyperparameter vector as the floats do and reach the step as 0-dim int64 tensors, which
`linalg.repeat` loops over; a count that sets a shape stays static (`Solver.static_params`).
The graphs below are exported (or built, once) from one instance and run with the
hyperparameters of another (what `fast.steps_function` does with a cached library), against that
instance's eager iterates. Zero trips are checked on the built library, where AOTInductor once
got them wrong.
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
N_STEPS = 3


@pytest.fixture(scope="module")
def problem():
    return build_quadratic()



def _exported_with(built: Solver, run: Solver, problem, state: State, n_steps: int) -> State:
    """n_steps of the graph exported from `built`, given `run`'s hyperparameters."""
    keys = list(state)
    module = fast.export_steps(built, Oracles(problem), state).module()
    with torch.no_grad():
        out = module(torch.tensor(n_steps), fast.hyperparameter_tensor(run),
                     *(state[k] for k in keys))
    return dict(zip(keys, out))


def _assert_same_iterates(got: State, expected: State) -> None:
    assert sorted(got) == sorted(expected)
    for k, value in expected.items():
        if value.is_floating_point():
            difference = float((got[k] - value).abs().max())
            assert difference <= TOLERANCE, f"max |fast - eager| of {k} is {difference:.2e}"
        else:
            assert torch.equal(got[k], value), k


def test_counts_are_inputs_and_leave_the_build_identity():
    amigo = get_solver("amigo")()
    assert {"n_inner_steps", "n_linear_steps"} <= set(fast.tensor_fields(amigo))
    assert "n_inner_steps" not in fast.static_identity(amigo)
    assert fast.static_identity(get_solver("amigo")(n_inner_steps=2)) == fast.static_identity(amigo)
    # A count that sets a shape (ESJ's directions per step) stays a constant of the build.
    esj = get_solver("esj")()
    assert "n_directions" in esj.static_params
    assert fast.static_identity(esj)["n_directions"] == esj.params.n_directions
    assert "n_directions" not in fast.tensor_fields(esj)
    # A bool is a choice, not a count.
    assert "first_order" in fast.static_identity(get_solver("maml")())


def test_the_layout_follows_the_declared_types_not_the_values():
    """step_inner = 1 (an int value of a float field) is still a float entry: a cached library
    must read it as a step size for every trial."""
    default, integral = get_solver("amigo")(), get_solver("amigo")(step_inner=1)
    assert fast.tensor_fields(integral) == fast.tensor_fields(default)
    assert "step_inner" not in fast.integer_fields(integral)
    assert fast.static_identity(integral) == fast.static_identity(default)


def test_the_step_sees_counts_as_int64_tensors():
    amigo = get_solver("amigo")(n_inner_steps=7)
    graph_solver = fast.with_tensor_hyperparameters(amigo, fast.hyperparameter_tensor(amigo))
    count = graph_solver.params.n_inner_steps
    assert isinstance(count, torch.Tensor) and count.dtype == torch.int64 and count.dim() == 0
    assert int(count) == 7
    assert graph_solver.params.step_inner.dtype == torch.float64
    assert amigo.params.n_inner_steps == 7  # the host-side instance keeps its int


def test_one_export_of_amigo_serves_another_inner_count(problem):
    built, trial = get_solver("amigo")(n_inner_steps=2), get_solver("amigo")(n_inner_steps=5)
    state = start_state(built, problem)
    expected = eager_steps(trial, problem, dict(state), N_STEPS)
    _assert_same_iterates(_exported_with(built, trial, problem, state, N_STEPS), expected)
    # Not the built count's iterates: the count in the graph is the input's.
    other = eager_steps(built, problem, dict(state), N_STEPS)
    assert float((other["y"] - expected["y"]).abs().max()) > 1e-6


@pytest.mark.slow
def test_one_library_serves_every_count_and_zero_trips(problem, tmp_path):
    """The built library, not only the exported graph: AOTInductor once built a zero-trip loop
    nested in the step loop wrong (`linalg.repeat`). stocBiO built at n_neumann_steps = 2, run
    with 5 and 0 Neumann steps (its inner loop count nested in the step loop)."""
    built = get_solver("stocbio")(n_neumann_steps=2)
    state = start_state(built, problem)
    keys = list(state)
    package = fast.build_library(fast.export_steps(built, Oracles(problem), state),
                                 str(tmp_path / "stocbio.pt2"))
    runner = fast.load_library(package)
    for count in (5, 0, 2):
        trial = get_solver("stocbio")(n_neumann_steps=count)
        chunk = fast.steps_function(runner, trial, keys)
        expected = eager_steps(trial, problem, dict(state), N_STEPS)
        _assert_same_iterates(chunk(dict(state), N_STEPS), expected)


def _init_param_values(solver_cls) -> list[tuple[str, object, object]]:
    """(field, default, another allowed value) for each of the solver's `init_params`."""
    out = []
    for name in solver_cls.init_params:
        default = getattr(solver_cls.Params(), name)
        choice = solver_cls.search_space.get(name)
        others = [c for c in getattr(choice, "values", ()) if c != default]
        assert others, f"{solver_cls.name}.{name}: a test needs a second value in its search space"
        out.append((name, default, others[0]))
    return out


@pytest.mark.parametrize("name", [n for n, cls in solvers().items() if cls.init_params])
def test_init_params_leave_the_identity_and_the_step(name, problem):
    """A field only `init` reads is not part of a build's identity, and the graph exported with
    one value gives the eager iterates of a run started with the other."""
    solver_cls = get_solver(name)
    for field, default, other in _init_param_values(solver_cls):
        built, run = solver_cls(**{field: default}), solver_cls(**{field: other})
        assert fast.static_identity(built) == fast.static_identity(run)
        state = start_state(run, problem)
        _assert_same_iterates(_exported_with(built, run, problem, state, N_STEPS),
                              eager_steps(run, problem, state, N_STEPS))


def test_every_declared_init_param_is_a_field():
    for solver_cls in solvers().values():
        fields = {f for f in solver_cls.Params.__dataclass_fields__}
        assert set(solver_cls.init_params) <= fields, solver_cls.name


def test_an_optional_float_is_an_input_when_set_and_its_none_ness_is_identity(problem):
    """FSLA's momentum (`float | None`, None ties it to the step): every set value shares one
    build, and the graph exported with one value gives the eager iterates of another."""
    fsla = get_solver("fsla")
    built, run = fsla(momentum=0.2), fsla(momentum=0.7)
    assert "momentum" in fast.tensor_fields(built)
    assert fast.static_identity(built) == fast.static_identity(run)
    assert fast.static_identity(fsla()) != fast.static_identity(built)  # None: derived in the graph
    assert "momentum" not in fast.tensor_fields(fsla())
    state = start_state(run, problem)
    got, expected = _exported_with(built, run, problem, state, N_STEPS), eager_steps(run, problem, state, N_STEPS)
    _assert_same_iterates(got, expected)
    other = eager_steps(built, problem, state, N_STEPS)
    assert float((other["x"] - expected["x"]).abs().max()) > 1e-9  # the test can fail
