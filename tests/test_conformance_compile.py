"""The compile table: every registered solver's step compiles as one graph and gives the eager
iterates (parametrized over the registry, so a solver dropped in later is covered).

For each solver, on the float64 quadratic of conftest.build_quadratic:
`torch.compile(solver.step, fullgraph=True, backend="aot_eager")`; the first call compiles and
the next COMPILED_CALLS run under `error_on_recompile`; the state keeps its keys, shapes, dtypes
and device at every step, and every entry equals the eager step's, step by step.

- fullgraph=True makes a graph break (`.item()`, `float(tensor)`, a Python `if` on a tensor
  value) an error instead of a silent fall back to Python.
- Backend aot_eager rather than "eager" (dynamo alone): AOTAutograd functionalizes and traces
  the graph as Inductor (the runner's `--compile`) does before generating code, so an operation
  it cannot trace fails here too; it runs the eager kernels, so no code generation time. Measured
  over the whole table on a shared 2-core CPU, torch 2.13: ~62 s of CPU time with aot_eager,
  ~25 s with eager; the difference buys the AOTAutograd check.
- Integer parameters (loop counts, periods, memories) are capped at SMALL: a loop of 2
  iterations traces the same operations as one of 20, while dynamo's tracing time grows with the
  unrolled graph (VRBO's defaults took ~200 s to compile, iMAML's ~130 s); with short periods
  the steps also cross period boundaries.
- The initial state is cloned key by key before the first call, as the runner does: dynamo
  guards on aliasing between inputs, so an init that stores one tensor under two keys
  (x_prev = x) would recompile at the second call.
- A solver that truly cannot compile says why in `Solver.compile_blocker`; its row is then an
  expected failure (strict: a blocker that goes away fails the table until the attribute goes).
"""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch._dynamo

from benchopt_bilevel import rng
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import solvers
from benchopt_bilevel.solver import Solver

from conftest import build_quadratic

COMPILED_CALLS = 3  # calls after the compiling one, each must reuse its graph
SMALL = 2  # cap on integer parameters (loop counts, periods)
# aot_eager runs the same eager kernels as the eager step (bitwise equal with torch 2.13); 1e-12
# leaves room for a decomposition that reorders a float64 reduction in another torch version.
RTOL = ATOL = 1e-12


def _table_row(name: str):
    blocker = solvers()[name].compile_blocker
    if blocker is None:
        return name
    return pytest.param(name, marks=pytest.mark.xfail(
        reason=blocker, strict=True, raises=torch._dynamo.exc.TorchDynamoException))


ROWS = [_table_row(name) for name in sorted(solvers())]


def small_solver(cls: type[Solver]) -> Solver:
    """`cls` with its default parameters, integer ones capped at SMALL."""
    defaults = cls.Params()
    small = {f.name: min(getattr(defaults, f.name), SMALL) for f in dataclasses.fields(defaults)
             if type(getattr(defaults, f.name)) is int}  # bool is an int: exact type only
    return cls(**small)


def _assert_same_layout(state, reference, where: str) -> None:
    assert state.keys() == reference.keys(), f"{where}: keys {sorted(state)} != {sorted(reference)}"
    for key, value in state.items():
        ref = reference[key]
        assert (value.shape, value.dtype, value.device) == (ref.shape, ref.dtype, ref.device), (
            f"{where}: state[{key!r}] is {value.dtype}{list(value.shape)} on {value.device}, "
            f"was {ref.dtype}{list(ref.shape)} on {ref.device}")


def check_compiled_step(solver: Solver, calls: int = COMPILED_CALLS) -> None:
    """Compile `solver.step` with fullgraph=True; 1 + `calls` steps with no recompilation, a
    stable state layout and the eager iterates at every step."""
    problem = build_quadratic()
    oracles = Oracles(problem)
    with torch.no_grad():
        initial = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(3, problem.device))
        eager = {k: v.clone() for k, v in initial.items()}
        compiled = {k: v.clone() for k, v in initial.items()}
        step = torch.compile(solver.step, fullgraph=True, backend="aot_eager")
        for i in range(1 + calls):
            if i == 0:
                compiled = step(oracles, compiled)  # compiles
            else:
                with torch._dynamo.config.patch(error_on_recompile=True):
                    compiled = step(oracles, compiled)
            eager = solver.step(oracles, eager)
            _assert_same_layout(compiled, initial, f"compiled step {i + 1}")
            _assert_same_layout(eager, initial, f"eager step {i + 1}")
            for key in initial:
                torch.testing.assert_close(compiled[key], eager[key], rtol=RTOL, atol=ATOL,
                                           msg=lambda m, key=key, i=i: f"step {i + 1}, state[{key!r}]: {m}")


@pytest.fixture
def clean_dynamo():
    # A fresh cache per solver: its recompile limit and guards belong to this row only.
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("name", ROWS)
def test_step_compiles_as_one_graph_and_matches_eager(name, clean_dynamo):
    check_compiled_step(small_solver(solvers()[name]))


# -- the table's checks can fail ---------------------------------------------------------------

class _ReadsAValue(solvers()["soba"]):
    """SOBA whose step branches on a tensor value in Python (a graph break)."""

    def step(self, oracles, state):
        new = super().step(oracles, state)
        if float(new["x"].abs().max()) > 1e30:
            new["x"] = torch.zeros_like(new["x"])
        return new


class _GrowsItsState(solvers()["soba"]):
    """SOBA whose state gains one row of history per step (a new shape at every call)."""

    def init(self, oracles, x, y, key):
        return {**super().init(oracles, x, y, key), "history": x[None]}

    def step(self, oracles, state):
        new = super().step(oracles, {k: v for k, v in state.items() if k != "history"})
        return {**new, "history": torch.cat([state["history"], new["x"][None]])}


class _CountsOnItself(solvers()["soba"]):
    """SOBA that keeps a Python step counter on the instance (a guard that fails at every call)."""

    def step(self, oracles, state):
        self.steps_taken = getattr(self, "steps_taken", 0) + 1
        new = super().step(oracles, state)
        return {**new, "x": new["x"] * (1.0 + 0.0 * self.steps_taken)}


class _DriftsFromEager(solvers()["soba"]):
    """SOBA whose compiled step takes another path than its eager one."""

    def step(self, oracles, state):
        new = super().step(oracles, state)
        if torch.compiler.is_compiling():
            new["x"] = new["x"] * (1 + 1e-9)
        return new


@pytest.mark.parametrize("solver_cls, error, match", [
    (_ReadsAValue, torch._dynamo.exc.TorchDynamoException, "data-dependent"),  # a UserError in torch 2.13
    (_GrowsItsState, AssertionError, r"state\['history'\] is torch.float64\[2, 5\]"),
    (_CountsOnItself, torch._dynamo.exc.RecompileError, "steps_taken"),
    (_DriftsFromEager, AssertionError, r"step 1, state\['x'\]"),
], ids=["reads_a_value", "grows_its_state", "counts_on_itself", "drifts_from_eager"])
def test_the_table_rejects(solver_cls, error, match, clean_dynamo):
    with pytest.raises(error, match=match):
        check_compiled_step(solver_cls())


def test_small_solver_caps_integer_parameters_only():
    solver = small_solver(solvers()["vrbo"])
    defaults = solvers()["vrbo"].Params()
    assert (solver.params.n_inner_steps, solver.params.period) == (SMALL, SMALL)
    assert solver.params.step_inner == defaults.step_inner  # floats untouched
