"""The compile table: every registered solver's step compiles as one graph and gives the eager
iterates (parametrized over the registry, so a solver dropped in later is covered). The rule is
`benchopt_bilevel.conformance.check_compile`, the one `benchopt-bilevel check` runs.

For each solver, on the float64 quadratic of `fixtures.build_quadratic`:
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
- A solver that truly cannot compile says why in `Solver.compile_blocker`; its compilation must
  then fail (strict: a blocker that goes away fails the table until the attribute goes).
- A `host_side` solver (a Python sampler in its step) is never compiled: its row is skipped with
  the solver's reason, and `run --compile` runs it eager (tests/test_hpo_baselines.py).
"""
from __future__ import annotations

import pytest
import torch
import torch._dynamo

from benchopt_bilevel.conformance import SMALL, check_compile, check_compiled_step, small_solver
from benchopt_bilevel.registry import solvers

ROWS = sorted(solvers())


@pytest.fixture
def clean_dynamo():
    # A fresh cache per row: its recompile limit and guards belong to this row only.
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("name", ROWS)
def test_step_compiles_as_one_graph_and_matches_eager(name):
    if solvers()[name].host_side:
        pytest.skip(f"{name}: host-side step, never compiled ({solvers()[name].host_side})")
    result = check_compile(solvers()[name])
    assert result.passed, f"{name}: {result.message} (fix: {result.hint})"


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
    assert (solver.params.n_inner_steps, solver.params.n_neumann_steps) == (SMALL, SMALL)
    assert defaults.n_inner_steps > SMALL and defaults.n_neumann_steps > SMALL
    assert solver.params.step_inner == defaults.step_inner  # floats untouched
    assert solver.params.period_frac == defaults.period_frac


def test_the_rule_reports_a_graph_break_with_a_hint():
    result = check_compile(_ReadsAValue)
    assert (result.name, result.passed) == ("compile", False)
    assert "\n" not in result.message and result.message
    assert ".item()" in result.hint and "compile_blocker" in result.hint


@pytest.mark.parametrize("base, passed", [(_ReadsAValue, True), (solvers()["soba"], False)],
                         ids=["blocked_and_fails", "blocked_but_compiles"])
def test_a_compile_blocker_expects_the_compilation_to_fail(base, passed):
    blocked = type("Blocked", (base,), {"compile_blocker": "branches on a tensor value"})
    result = check_compile(blocked)
    assert result.passed is passed, result.message
    if not passed:
        assert "remove it" in result.message
