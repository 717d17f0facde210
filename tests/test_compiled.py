"""The compiled path (`--compile`): steps under torch.compile compute the same
iterates as the eager chunk, compiles once (no recompilation per chunk), and its rows carry the
declared oracle counts and the compile time in its own column."""
from __future__ import annotations

import pytest
import torch
import torch._dynamo
from click.testing import CliRunner

from benchopt_bilevel import rng
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import get_solver
from benchopt_bilevel.chunks import make_chunk
from benchopt_bilevel.cli import main
from benchopt_bilevel.runner import Cell, RunConfig, cell_identity, run_cell

from conftest import WELL_CONDITIONED, build_quadratic

CPU = torch.device("cpu")


def _start(name: str):
    """Oracles of the small float64 quadratic, the solver `name` and its initial state."""
    problem = build_quadratic()
    oracles, solver = Oracles(problem), get_solver(name)()
    with torch.no_grad():
        return oracles, solver, solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(3, CPU))


@pytest.mark.parametrize("name", ["soba"])
def test_compiled_chunk_matches_eager(name):
    oracles, solver, state = _start(name)
    torch._dynamo.reset()
    with torch.no_grad():
        eager = make_chunk(solver, oracles, False, CPU)
        compiled = make_chunk(solver, oracles, True, CPU)
        expected, got = dict(state), dict(state)
        for _ in range(3):  # three chunks: the compiled step is reused, never recompiled
            expected = eager(expected, 8)
            if _ > 0:  # the first call compiles; later ones must reuse it
                with torch._dynamo.config.patch(error_on_recompile=True):
                    got = compiled(got, 8)
            else:
                got = compiled(got, 8)
    for key in ("x", "y", "v"):
        torch.testing.assert_close(got[key], expected[key], rtol=1e-9, atol=1e-9)


def test_compiled_run_rows():
    torch._dynamo.reset()
    config = RunConfig(max_steps=64, max_time=600, n_evals=3, compile=True, chunk_steps=16, dtype="float64")
    with torch._dynamo.config.patch(error_on_recompile=True):
        table = run_cell(Cell("quadratic", "soba", WELL_CONDITIONED), config)
    final = table.iloc[-1]
    assert final["status"] == "ok", final["message"]
    assert bool(final["compiled"]) and final["warmup_time"] > 0
    assert final["step"] == 64
    # Counted from SOBA's declared cost: one of each of its four oracles per step.
    for kind in ("grad_inner", "hvp", "cross", "grad_outer"):
        assert final[f"oracle_{kind}"] == 64


def test_compiled_run_of_an_aliasing_init_compiles_once():
    # FSLA's init stores x under two keys (x_prev = x); dynamo guards on aliasing, so the timed
    # state must be distinct tensors like the warm-up's copy, or the first timed chunk recompiles.
    _, _, state = _start("fsla")
    assert any(a is not b and state[a] is state[b] for a in state for b in state), "pick a solver whose init aliases"
    torch._dynamo.reset()
    config = RunConfig(max_steps=8, max_time=600, n_evals=2, compile=True, dtype="float64")
    with torch._dynamo.config.patch(error_on_recompile=True):
        table = run_cell(Cell("quadratic", "fsla", WELL_CONDITIONED), config)
    assert table.iloc[-1]["status"] == "ok", table.iloc[-1]["message"]


def test_compiling_leaves_run_identities_unchanged():
    # torch.compile injects `__import_<module>` globals into the compiling module (the runner):
    # they must not enter other runs' code hashes (a parent and its workers would disagree).
    other = Cell("quadratic", "aid-cg", WELL_CONDITIONED)
    config = RunConfig(max_steps=4, n_evals=2)
    before = cell_identity(other, config)[1]
    torch._dynamo.reset()
    run_cell(Cell("quadratic", "soba", WELL_CONDITIONED),
             RunConfig(max_steps=4, n_evals=2, compile=True, chunk_steps=2, dtype="float64"))
    assert cell_identity(other, config)[1] == before


def test_unrolled_compiled_chunk_matches_eager():
    # `compile_steps`: several steps in one compiled graph give the eager iterates; a remainder
    # (n not a multiple of the unroll) runs eagerly and stays on the same trajectory.
    oracles, solver, state = _start("soba")
    with torch.no_grad():
        expected = make_chunk(solver, oracles, False, CPU)(dict(state), 7)
        got = make_chunk(solver, oracles, True, CPU, unroll=2)(dict(state), 7)
    assert int(got["t"]) == 7
    for key in ("x", "y", "v"):
        torch.testing.assert_close(got[key], expected[key], rtol=1e-9, atol=1e-9)


def test_unrolled_compiled_run_counts_whole_calls():
    torch._dynamo.reset()
    config = RunConfig(max_steps=12, max_time=600, n_evals=3, compile=True, compile_steps=2, dtype="float64")
    table = run_cell(Cell("quadratic", "soba", WELL_CONDITIONED), config)
    assert table.iloc[-1]["status"] == "ok", table.iloc[-1]["message"]
    assert all(step % 2 == 0 for step in table["step"]) and table.iloc[-1]["step"] >= 12
    identity_one = cell_identity(Cell("quadratic", "soba"), RunConfig(compile=True))[0]["config"]
    assert "compile_steps" not in identity_one  # older runs keep their identities
    assert '"compile_steps": 2' in cell_identity(Cell("quadratic", "soba"), config)[0]["config"]


def test_compile_steps_needs_compile():
    from benchopt_bilevel.errors import UserError

    with pytest.raises(UserError, match="needs --compile"):
        RunConfig(compile_steps=4)


@pytest.mark.parametrize("value", ["aot", "inductor"])
def test_the_retired_compile_backend_points_to_the_fast_path(value):
    # `--compile` is torch.compile only; what `--compile-backend aot` offered is `--fast`.
    result = CliRunner().invoke(main, ["run", "--compile", "--compile-backend", value, "--max-steps", "1"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "the aot backend was replaced by the fast path: use --fast (or --path fast)" in lines[0]
    assert "--compile-backend" not in CliRunner().invoke(main, ["run", "--help"]).output


def test_a_compiled_step_that_fails_runs_eager_and_says_why(monkeypatch):
    # A compiler failure at the warm-up (seen on CUDA with torch 2.11: CUDA graphs around a
    # while_loop) must not lose the run: it goes on eager, and its rows say so and why.
    from benchopt_bilevel import runner

    real = runner.make_chunk

    def failing(solver, oracles, compile, device, unroll=1):
        if not compile:
            return real(solver, oracles, compile, device, unroll)

        def chunk(state, n):
            raise RuntimeError("storage data ptrs are not allocated in pool\nmore lines")
        return chunk

    monkeypatch.setattr(runner, "make_chunk", failing)
    # "auto" would take the fast path on this small quadratic: --compile asked, it stays eager.
    config = RunConfig(max_steps=8, max_time=600, n_evals=2, compile=True, dtype="float64", step_path="auto")
    table = run_cell(Cell("quadratic", "soba", WELL_CONDITIONED), config)
    eager = run_cell(Cell("quadratic", "soba", WELL_CONDITIONED), RunConfig(max_steps=8, max_time=600, n_evals=2,
                                                                          dtype="float64"))
    last = table.iloc[-1]
    assert last["status"] == "ok" and last["step"] == 8
    assert set(table["path"]) == {"eager"} and not table["compiled"].any()
    assert last["message"] == "ran eager: the compiled step failed (RuntimeError: storage data ptrs are not allocated in pool)"
    assert last["objective_value"] == eager.iloc[-1]["objective_value"]  # the same eager steps
