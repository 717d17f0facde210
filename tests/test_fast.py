"""The fast path in the runner: the same iterates as eager, one build per solver structure shared by
seeds and step sizes through the build cache, the eager fallback, the auto rule, `run --fast`.

SOBA's library is built once per test session (about a minute on a 2-core CPU) into a cache
directory of the session; every other test reuses it (a hit).
"""
from __future__ import annotations

import itertools
import json
import math
import os
import time
import zipfile

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from benchopt_bilevel import build_cache, cells, fast, rng
from benchopt_bilevel.cells import Cell, RunConfig, validate
from benchopt_bilevel.chunks import FastChunk, library_mismatch, make_chunk
from benchopt_bilevel.cli import main
from benchopt_bilevel.fixtures import WELL_CONDITIONED, build_quadratic
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import get_solver
from benchopt_bilevel.results import load_results
from benchopt_bilevel.runner import _run, run_cell
from benchopt_bilevel.scratch_buffers import scratch_count

STEPS = 50
QUADRATIC_SPEC = "quadratic[" + ",".join(f"{k}={v}" for k, v in WELL_CONDITIONED.items()) + "]"


def _config(**overrides) -> RunConfig:
    return RunConfig(**{"max_steps": STEPS, "n_evals": 6, "dtype": "float64", "step_path": "fast", **overrides})


def _cell(solver: str = "soba", seed: int = 0, **params) -> Cell:
    return Cell("quadratic", solver, dict(WELL_CONDITIONED), params, seed)


@pytest.fixture(scope="session")
def soba_build(tmp_path_factory):
    """A session's build cache holding SOBA's library for the float64 quadratic, and the rows of
    the run that built it."""
    directory = tmp_path_factory.mktemp("builds")
    previous = os.environ.get(build_cache.CACHE_ENV)
    os.environ[build_cache.CACHE_ENV] = str(directory)
    try:
        rows = run_cell(_cell(), _config())
        yield directory, rows
    finally:
        if previous is None:
            os.environ.pop(build_cache.CACHE_ENV, None)
        else:
            os.environ[build_cache.CACHE_ENV] = previous


def _initial_state(solver, oracles, problem, seed: int = 3):
    with torch.no_grad():
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(seed))
    return {k: v.clone() for k, v in state.items()}


def _max_difference(a, b) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a if a[k].is_floating_point())


def test_first_run_builds_and_records_it(soba_build):
    _, rows = soba_build
    assert (rows["status"] == "ok").all() and (rows["path"] == "fast").all()
    assert not rows["build_cache_hit"].iloc[-1] and rows["message"].iloc[-1] == ""
    assert rows["step"].iloc[-1] == STEPS


def _packaged_files(directory, suffix: str) -> list[bytes]:
    """The files ending in `suffix` inside the build cache's package (there is one)."""
    packages = [p for p in directory.glob("*.pt2") if not p.name.startswith(".")]
    assert packages
    with zipfile.ZipFile(packages[0]) as archive:
        return [archive.read(m) for m in archive.namelist() if m.endswith(suffix)]


def test_the_built_wrapper_keeps_kernel_only_buffers_on_the_stack(soba_build):
    """The rewrite of fast_options.with_kernel_only_buffers_on_the_stack reached the package that
    was compiled (its wrapper's source is in the package), and the rows above came from it."""
    wrappers = [code.decode() for code in _packaged_files(soba_build[0], ".wrapper.cpp")]
    assert wrappers and sum(scratch_count(code) for code in wrappers) > 0


def test_the_built_wrapper_leaves_the_runtime_interface_to_its_own_object(soba_build):
    """fast_options.with_runtime_interface_compiled_once split the packaged wrapper: the graph's
    part has no interface functions, the library has them (the rows above came from it)."""
    wrappers = [code.decode() for code in _packaged_files(soba_build[0], ".wrapper.cpp")]
    libraries = _packaged_files(soba_build[0], ".so")
    assert wrappers and all("AOTInductorModelContainerRun(" not in code for code in wrappers)
    assert libraries and all(b"AOTInductorModelContainerRun" in library for library in libraries)


def test_fast_rows_equal_eager_rows(soba_build):
    """Same evaluation points, same objective values (float64, within 1e-12), same oracle counts
    (fast rows count the solver's declared cost, eager rows the calls made)."""
    _, fast_rows = soba_build
    eager_rows = run_cell(_cell(), _config(step_path="eager"))
    assert (eager_rows["path"] == "eager").all() and eager_rows["build_cache_hit"].isna().all()
    assert list(fast_rows["step"]) == list(eager_rows["step"])
    values = [c for c in fast_rows if c.startswith("objective_") and c != "objective_name"]
    assert values
    for column in values:
        assert (fast_rows[column] - eager_rows[column]).abs().max() <= 1e-12 * max(1.0, eager_rows[column].abs().max())
    assert list(fast_rows["oracle_total"]) == list(eager_rows["oracle_total"])


def test_fast_chunk_iterates_equal_eager_steps(soba_build):
    """The library's iterates after 13 + 24 steps in two calls equal 37 eager steps (float64)."""
    directory, _ = soba_build
    problem = build_quadratic()
    solver = get_solver("soba")(step_inner=0.05)
    oracles = Oracles(problem)
    state = _initial_state(solver, oracles, problem)
    chunk = FastChunk(solver, oracles, torch.device("cpu"), torch.float64, directory)
    got = chunk(chunk(dict(state), 13), 24)
    assert chunk.cache_hit is True and not chunk.note
    expected = make_chunk(solver, oracles, False, torch.device("cpu"))(dict(state), 37)
    assert _max_difference(got, expected) <= 1e-12


def test_saba_exported_graph_equals_eager():
    """SABA's exported loop (the graph a library is built from, run by PyTorch without compiling)
    gives its eager iterates (every solver's: tests/test_fast_every_solver.py)."""
    problem = build_quadratic()
    solver = get_solver("saba")()
    oracles = Oracles(problem)
    state = _initial_state(solver, oracles, problem)
    got = fast.exported_steps(solver, oracles, state)(dict(state), 9)
    expected = make_chunk(solver, oracles, False, torch.device("cpu"))(dict(state), 9)
    assert _max_difference(got, expected) <= 1e-12


def test_seeds_and_step_sizes_reuse_one_build(soba_build):
    directory, _ = soba_build
    runs = [run_cell(_cell(seed=seed, step_inner=step), _config(max_steps=10))
            for seed in (1, 2) for step in (0.05, 0.2)]
    assert [bool(rows["build_cache_hit"].iloc[-1]) for rows in runs] == [True] * 4
    assert all((rows["path"] == "fast").all() for rows in runs)
    assert build_cache.cache_stats(directory)["entries"] == 1


def test_hit_costs_a_fraction_of_the_build(soba_build):
    directory, _ = soba_build
    problem = build_quadratic()
    solver = get_solver("soba")()
    oracles = Oracles(problem)
    state = _initial_state(solver, oracles, problem)
    identity = build_cache.build_identity(solver, problem, state, torch.float64, torch.device("cpu"))
    start = time.perf_counter()
    loaded = build_cache.get_or_build(identity, list(state), _no_build, fast.load_library, directory)
    hit_seconds = time.perf_counter() - start
    print(f"SOBA on the small quadratic: build {loaded.build_seconds:.1f} s, hit {hit_seconds:.3f} s")
    assert loaded.hit and hit_seconds < loaded.build_seconds / 3


def _no_build(path: str) -> None:
    raise AssertionError("a hit must not build")


class BranchySOBA(get_solver("soba")):
    """SOBA with a Python branch on a tensor value: runs eager, cannot be exported."""

    name = "branchy-soba"

    def step(self, oracles, state):
        if bool(state["x"].abs().sum() > 1e30):
            return state
        return super().step(oracles, state)


def _run_instance(solver, config: RunConfig) -> pd.DataFrame:
    problem_cls, problem_params, _, _ = validate(_cell())
    rows, outcome = _run(problem_cls, problem_params, solver, 0, config, torch.device("cpu"), torch.float64)
    return pd.DataFrame(rows).assign(**outcome)


def test_a_solver_that_cannot_export_runs_eager_with_a_note(soba_build):
    rows = _run_instance(BranchySOBA(), _config())
    assert (rows["status"] == "ok").all() and rows["step"].iloc[-1] == STEPS
    assert (rows["path"] == "eager").all() and rows["build_cache_hit"].isna().all()
    message = rows["message"].iloc[-1]
    assert message.startswith("fast path unavailable: ") and message.endswith("; ran eager"), message


def test_a_library_that_computes_something_else_runs_eager_with_a_note(soba_build, monkeypatch):
    """A library that builds, loads and runs but whose first steps are not the eager ones is not
    used: the run goes on eager and says why."""
    built = fast.steps_function

    def off_by_a_little(runner, solver, keys):
        steps = built(runner, solver, keys)
        return lambda state, n: {**steps(state, n), "x": steps(state, n)["x"] + 1e-6}

    monkeypatch.setattr(fast, "steps_function", off_by_a_little)
    rows = _run_instance(get_solver("soba")(), _config())
    assert (rows["path"] == "eager").all() and rows["build_cache_hit"].isna().all()
    message = rows["message"].iloc[-1]
    assert "the built library's x differs from eager steps' by 1.0e-06" in message and message.endswith("; ran eager")


def test_library_mismatch_is_relative_to_the_entry_and_the_dtype():
    state = {"x": torch.tensor([1000.0, 2.0], dtype=torch.float64), "key": torch.tensor(3),
             "v": torch.tensor([0.5, 0.25], dtype=torch.float32)}
    assert library_mismatch(state, state) == ""
    assert library_mismatch({**state, "x": state["x"] + 1e-6}, state) == ""  # 1e-9 of |x| = 1000
    assert "x differs" in library_mismatch({**state, "x": state["x"] + 1e-4}, state)
    assert library_mismatch({**state, "v": state["v"] + 1e-4}, state) == ""  # float32: √ε = 3.5e-4
    assert "v differs" in library_mismatch({**state, "v": state["v"] + 1e-3}, state)
    assert "key differs" in library_mismatch({**state, "key": torch.tensor(4)}, state)
    assert "x differs" in library_mismatch({**state, "x": state["x"] * float("nan")}, state)


@pytest.mark.slow
def test_zero_trip_inner_loops_in_a_library_give_the_eager_iterates(tmp_path):
    """SUSTAIN with one Neumann term draws a Neumann length of 0 at every step: its inner
    while_loop runs zero times inside the step loop. AOTInductor (torch 2.13) built that case
    wrong (2e-3 relative error after one step) until `linalg.repeat` returned a zero-trip loop's
    input explicitly; the library must give the eager iterates (float64)."""
    problem = build_quadratic()
    solver = get_solver("sustain")(n_neumann_terms=1)
    oracles = Oracles(problem)
    state = _initial_state(solver, oracles, problem)
    chunk = FastChunk(solver, oracles, torch.device("cpu"), torch.float64, tmp_path)
    got = chunk(dict(state), 16)
    assert chunk.cache_hit is False and not chunk.note
    expected = make_chunk(solver, oracles, False, torch.device("cpu"))(dict(state), 16)
    assert _max_difference(got, expected) <= 1e-12


def test_auto_takes_the_fast_path_on_a_cheap_step(soba_build):
    rows = _run_instance(get_solver("soba")(), _config(step_path="auto"))
    assert (rows["path"] == "fast").all() and rows["build_cache_hit"].iloc[-1]


def test_auto_stays_eager_under_a_zero_threshold_and_keeps_that_choice(tmp_path, monkeypatch):
    """Auto's choice is the first run's, for every later run of the build identity: a run that
    would now choose fast stays eager, so one selection's seeds never straddle two paths."""
    monkeypatch.setenv(build_cache.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(cells, "FAST_SECONDS_PER_CALL", 0.0)
    rows = _run_instance(get_solver("soba")(), _config(step_path="auto"))
    assert (rows["path"] == "eager").all() and rows["build_cache_hit"].isna().all() and rows["message"].iloc[-1] == ""
    monkeypatch.setattr(cells, "FAST_SECONDS_PER_CALL", math.inf)
    rows = _run_instance(get_solver("soba")(outer_ratio=2.0), _config(step_path="auto"))
    assert (rows["path"] == "eager").all()
    [record] = tmp_path.glob("*.auto.json")
    assert json.loads(record.read_text())["choice"]["path"] == "eager"
    assert not list(tmp_path.glob("*.pt2"))


def test_auto_rule_is_per_declared_oracle_call(tmp_path, monkeypatch):
    """A 5 ms step of 100 cheap oracle calls (a period of a variance-reduced method) is
    dispatch-bound; a 5 ms step of 4 calls is arithmetic; host-side steps and CUDA never auto."""
    from benchopt_bilevel.runner import _wants_fast

    monkeypatch.setenv(build_cache.CACHE_ENV, str(tmp_path))
    cases = itertools.count()

    def identity() -> dict:  # a new identity per case: each decides afresh
        return {"case": next(cases)}

    auto, soba, cpu = RunConfig(step_path="auto"), get_solver("soba")(), torch.device("cpu")
    assert _wants_fast(auto, soba, cpu, 5e-3, lambda: 5e-3, lambda: 100.0, identity)
    assert not _wants_fast(auto, soba, cpu, 5e-3, lambda: 5e-3, lambda: 4.0, identity)
    assert _wants_fast(auto, soba, cpu, 5e-3, lambda: 5e-4, lambda: 4.0, identity)  # the faster of two eager steps
    assert not _wants_fast(auto, get_solver("random-search")(), cpu, 1e-6, lambda: 1e-6, lambda: 1.0, identity)
    assert not _wants_fast(auto, soba, torch.device("cuda"), 1e-6, lambda: 1e-6, lambda: 1.0, identity)
    assert not _wants_fast(RunConfig(step_path="eager"), soba, cpu, 1e-6, lambda: 1e-6, lambda: 1.0, identity)
    assert next(cases) == 3  # only the three auto cases on a CPU measured and recorded


def test_fast_is_refused_on_cuda_and_with_compile():
    with pytest.raises(cells.UserError, match="CPU"):
        RunConfig(step_path="fast", device="cuda")
    with pytest.raises(cells.UserError, match="choose one"):
        RunConfig(step_path="fast", compile=True)


def test_run_fast_end_to_end(soba_build, tmp_path):
    directory, _ = soba_build
    runner = CliRunner()
    args = ["run", "-p", QUADRATIC_SPEC, "-s", "soba", "--dtype", "float64", "--max-steps", "20",
            "--executor", "inline", "-o", str(tmp_path / "results")]
    result = runner.invoke(main, [*args, "--fast"], env={build_cache.CACHE_ENV: str(directory)})
    assert result.exit_code == 0, result.output
    rows = load_results(tmp_path / "results")
    assert (rows["path"] == "fast").all() and bool(rows["build_cache_hit"].iloc[-1])
    clash = runner.invoke(main, [*args, "--fast", "--path", "eager"])
    assert clash.exit_code != 0 and "disagree" in clash.output


def test_tune_reuses_one_build_across_trials_and_seeds(soba_build, tmp_path):
    """tune with the fast path: every trial (its own step sizes) and seed loads the library built
    once for SOBA on this problem, and the output says so."""
    directory, _ = soba_build
    result = CliRunner().invoke(main, [
        "tune", "--problem", QUADRATIC_SPEC, "--solver", "soba", "--n-trials", "3", "--tuning-seeds", "0,1",
        "--fresh-seeds", "7", "--max-steps", "20", "--n-evals", "3", "--dtype", "float64", "--path", "fast",
        "--executor", "inline", "--output-dir", str(tmp_path / "out")], env={build_cache.CACHE_ENV: str(directory)})
    assert result.exit_code == 0, result.output
    assert "fast path: 0 build(s), 7 run(s) reused a cached build, 0 eager" in result.output
    rows = pd.concat([pd.read_parquet(p) for p in (tmp_path / "out").rglob("*.parquet")], ignore_index=True)
    assert rows["run_id"].nunique() == 7 and (rows["path"] == "fast").all()
    assert rows.groupby("run_id")["build_cache_hit"].last().all()
    assert rows["solver_params"].nunique() == 3  # three trials' step sizes, one library
    assert build_cache.cache_stats(directory)["entries"] == 1


def test_tune_counts_builds_and_reuses():
    from benchopt_bilevel.tuning import step_paths

    def run(path, hit):
        return pd.DataFrame({"solver": ["soba"] * 2, "path": [path] * 2, "build_cache_hit": [hit] * 2})

    tables = [run("fast", False), run("fast", True), run("fast", True), run("eager", None), pd.DataFrame()]
    assert step_paths(tables) == {"built": 1, "reused": 2, "eager": 1, "compiled": 0}
