"""The conformance suite: every registered solver, including one dropped in later, must pass.

Budget (documented in README "Adding a solver"): on the well-conditioned quadratic of
conftest.WELL_CONDITIONED, with the solver's default parameters, float64, at most
CONVERGENCE_STEPS steps reach relative suboptimality ≤ CONVERGENCE_TOLERANCE. A solver whose
paper makes it biased says why in `Solver.biased`; it must then stay below BIASED_BOUND.
"""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from benchopt_bilevel import rng
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import solvers
from benchopt_bilevel.runner import Cell, RunConfig, run_cell

from conftest import WELL_CONDITIONED, build_quadratic

SOLVERS = sorted(solvers())
CONVERGENCE_STEPS = 1000
CONVERGENCE_TOLERANCE = 1e-2
BIASED_BOUND = 1e2  # a solver with `biased` set: relative suboptimality stays below this


def _run_steps(solver_cls, problem, n_steps, seed=0):
    solver = solver_cls()
    oracles = Oracles(problem)
    with torch.no_grad():
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(seed, problem.device))
        oracles.reset_counts()
        for _ in range(n_steps):
            state = solver.step(oracles, state)
    return solver, oracles, state


def test_registry_is_not_empty():
    assert len(SOLVERS) >= 8


@pytest.mark.parametrize("name", SOLVERS)
def test_metadata(name):
    cls = solvers()[name]
    assert cls.description and "\n" not in cls.description
    assert cls.reference, f"{name} must name its paper"
    module_doc = __import__(cls.__module__, fromlist=["_"]).__doc__ or ""
    assert "Oracle cost per step" in module_doc, f"{name}'s docstring must state its oracle cost per step"
    assert "Reference" in module_doc
    for key in cls.search_space:
        assert key in {f.name for f in __import__("dataclasses").fields(cls.Params)}


@pytest.mark.parametrize("name", SOLVERS)
def test_converges_on_well_conditioned_quadratic(name):
    table = run_cell(Cell("quadratic", name, WELL_CONDITIONED, {}, seed=0),
                     RunConfig(max_time=120, max_steps=CONVERGENCE_STEPS, n_evals=8, dtype="float64",
                               target=CONVERGENCE_TOLERANCE, stop_at_target=True))
    final = table.iloc[-1]
    assert final["status"] == "ok", final["message"]
    if solvers()[name].biased:
        # A documented biased method: it must stay bounded (no blow-up) within the budget.
        assert table["objective_relative_suboptimality"].max() <= BIASED_BOUND, solvers()[name].biased
        return
    assert final["objective_relative_suboptimality"] <= CONVERGENCE_TOLERANCE, (
        f"{name} reached {final['objective_relative_suboptimality']:.2e} in {final['step']} steps")


@pytest.mark.parametrize("name", SOLVERS)
def test_same_seed_same_iterates(name):
    problem = build_quadratic()
    _, _, first = _run_steps(solvers()[name], problem, 5, seed=3)
    _, _, second = _run_steps(solvers()[name], problem, 5, seed=3)
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key
    if solvers()[name].stochastic:
        _, _, other = _run_steps(solvers()[name], problem, 5, seed=4)
        assert not torch.equal(first["x"], other["x"]), "a different seed must draw other batches"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", SOLVERS)
def test_dtype_and_device_preserved(name, dtype):
    problem = build_quadratic(dtype=dtype)
    solver, _, state = _run_steps(solvers()[name], problem, 3)
    x, y = solver.output(state)
    for tensor in (x, y):
        assert tensor.dtype == dtype and tensor.device == problem.device
    for key, value in state.items():
        if value.is_floating_point():
            assert value.dtype == dtype, f"state[{key!r}] changed dtype to {value.dtype}"


@pytest.mark.parametrize("name", SOLVERS)
def test_oracle_counts_match_declaration(name):
    cls = solvers()[name]
    period = getattr(cls, "cost_period", 1)
    n_steps = 2 * period
    solver, oracles, _ = _run_steps(cls, build_quadratic(), n_steps)
    declared = {k: v * n_steps for k, v in solver.oracle_cost(oracles.facts).items() if v}
    assert dict(oracles.calls) == pytest.approx(declared), f"{name}: counted {dict(oracles.calls)}"


@pytest.mark.parametrize("name", SOLVERS)
def test_no_nan_with_default_params(name):
    _, _, state = _run_steps(solvers()[name], build_quadratic(dtype=torch.float32), 20)
    for key, value in state.items():
        if value.is_floating_point():
            assert torch.isfinite(value).all(), key


def _same(a, b) -> bool:
    """Deep equality where tensors compare by value (dtype and shape included)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(u, v) for u, v in zip(a, b))
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and _same(vars(a), vars(b))
    return a == b


@pytest.mark.parametrize("name", SOLVERS)
def test_step_is_pure(name):
    """step is a function of its input state only (the runner's warm-up and the compiled path
    rely on it): it modifies neither that state nor the solver instance and its parameters, and
    the same state gives the same output."""
    problem = build_quadratic()
    solver = solvers()[name]()
    oracles = Oracles(problem)
    with torch.no_grad():
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0, "cpu"))
        tensors = dict(state)
        snapshot = {k: v.clone() for k, v in state.items()}
        instance = copy.deepcopy(vars(solver))
        first = solver.step(oracles, state)
        second = solver.step(oracles, state)
    assert state.keys() == snapshot.keys(), f"step changed the keys of its input: {sorted(state)}"
    for key in snapshot:
        assert state[key] is tensors[key], f"step replaced state[{key!r}] in its input dict"
        assert torch.equal(snapshot[key], state[key]), f"step modified state[{key!r}] in place"
    for attribute in instance.keys() | vars(solver).keys():
        assert _same(instance.get(attribute), vars(solver).get(attribute)), (
            f"step changed the solver's {attribute!r}: {instance.get(attribute)!r} -> {vars(solver).get(attribute)!r}")
    assert first.keys() == second.keys()
    for key in first:
        assert _same(first[key], second[key]), f"two steps from one state differ in state[{key!r}]"
