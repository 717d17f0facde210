"""Resume: a rerun skips complete runs, reruns failed or partial ones, never duplicates rows,
and survives `kill -9` of the benchmark process."""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from benchopt_bilevel import provenance
from benchopt_bilevel.benchmark import expand, run_benchmark
from benchopt_bilevel.config import BenchmarkSpec
from benchopt_bilevel.executors.inline import InlineExecutor
from benchopt_bilevel.registry import get_problem, get_solver
from benchopt_bilevel.results import load_results, write_run
from benchopt_bilevel.results import failure_table
from benchopt_bilevel.runner import Cell, RunConfig, cell_identity

from conftest import WELL_CONDITIONED

CONFIG = RunConfig(max_steps=30, max_time=30, n_evals=4, dtype="float64")
CELLS = [Cell("quadratic", solver, WELL_CONDITIONED, {}, seed) for solver in ("soba", "aid-cg") for seed in (0, 1)]


class Counting(InlineExecutor):
    """Runs inline and remembers which runs it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.ran: list[str] = []

    def run(self, tasks):
        for task in tasks:
            self.ran.append(task.run_id)
            yield from super().run([task])


def _ids(cells=CELLS):
    return [cell_identity(cell, CONFIG)[1] for cell in cells]


def test_rerun_skips_complete_runs_and_force_reruns_them(tmp_path):
    first = Counting()
    table = run_benchmark(CELLS, CONFIG, tmp_path, executor=first)
    assert first.ran == _ids()
    again = Counting()
    reused = run_benchmark(CELLS, CONFIG, tmp_path, executor=again)
    assert again.ran == []
    assert sorted(reused["run_id"].unique()) == sorted(_ids())
    pd.testing.assert_frame_equal(reused.sort_values(["run_id", "step"]).reset_index(drop=True),
                                  table.sort_values(["run_id", "step"]).reset_index(drop=True))
    forced = Counting()
    run_benchmark(CELLS, CONFIG, tmp_path, executor=forced, force=True)
    assert forced.ran == _ids()
    stored = load_results(tmp_path)
    assert len(stored) == len(table) and not stored.duplicated(["run_id", "step"]).any()


def test_failed_and_partial_runs_run_again_without_duplicates(tmp_path):
    failed, partial, done, new = CELLS
    write_run(failure_table(failed, CONFIG, "timeout", "timeout", "killed"), tmp_path, _ids([failed])[0])
    unfinished = failure_table(partial, CONFIG, "ok", "", "")
    unfinished["final"] = False  # rows of a run that never wrote its final row
    write_run(unfinished, tmp_path, _ids([partial])[0])
    run_benchmark([done], CONFIG, tmp_path)
    executor = Counting()
    table = run_benchmark(CELLS, CONFIG, tmp_path, executor=executor)
    assert executor.ran == _ids([failed, partial, new])
    stored = load_results(tmp_path)
    assert sorted(stored["run_id"].unique()) == sorted(_ids())
    assert (stored[stored["final"]]["status"] == "ok").all()
    assert stored.groupby("run_id")["final"].sum().eq(1).all()
    assert not stored.duplicated(["run_id", "step"]).any() and len(stored) == len(table)


def test_the_same_cell_twice_runs_once(tmp_path):
    executor = Counting()
    run_benchmark([CELLS[0], CELLS[0]], CONFIG, tmp_path, executor=executor)
    assert len(executor.ran) == 1


def test_code_hash_covers_the_shared_modules_a_solver_uses():
    files = {path.name for path in provenance.module_closure(sys.modules[get_solver("aid-cg").__module__])}
    assert {"aid_cg.py", "_implicit.py", "linalg.py", "oracles.py", "inner.py"} <= files
    assert "cli.py" not in files and "soba.py" not in files


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(f"benchopt_bilevel.solvers._extra_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_code_hash_changes_with_a_shared_part_only(tmp_path):
    """A solver file that did not change still gets a new identity when its base class did."""
    (tmp_path / "shared.py").write_text("from benchopt_bilevel.solvers.soba import SOBA\n\n"
                                        "class Base(SOBA):\n    name = ''\n    scale = 1.0\n")
    (tmp_path / "child.py").write_text("from benchopt_bilevel.solvers._extra_shared import Base\n\n"
                                       "class Child(Base):\n    name = 'child-for-hash'\n")
    (tmp_path / "unrelated.py").write_text("X = 1\n")
    quadratic = get_problem("quadratic")
    try:
        _load(tmp_path / "shared.py", "shared")
        child = _load(tmp_path / "child.py", "child").Child
        _load(tmp_path / "unrelated.py", "unrelated")
        before = provenance.code_hash(child, quadratic)
        (tmp_path / "unrelated.py").write_text("X = 2\n")
        provenance._files_hash.cache_clear()
        assert provenance.code_hash(child, quadratic) == before
        (tmp_path / "shared.py").write_text((tmp_path / "shared.py").read_text().replace("1.0", "2.0"))
        provenance._files_hash.cache_clear()
        assert provenance.code_hash(child, quadratic) != before
    finally:
        for name in ("shared", "child", "unrelated"):
            sys.modules.pop(f"benchopt_bilevel.solvers._extra_{name}", None)
        provenance._files_hash.cache_clear()


# -- kill -9 ------------------------------------------------------------------------------------
GRID = ["-p", "quadratic[n_inner=64,n_outer=64,dim_x=5,dim_y=5,batch_size=8]", "-s", "soba", "-s", "aid-cg",
        "--seeds", "0-3", "--max-steps", "1000", "--max-time", "60", "--n-evals", "6", "--dtype", "float64"]


def _cli(output: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "benchopt_bilevel.cli", "run", *GRID, "-o", str(output), *extra]


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and the parent-death signal")
def test_kill_9_then_rerun_equals_an_uninterrupted_run(tmp_path):
    interrupted, reference = tmp_path / "interrupted", tmp_path / "reference"
    process = subprocess.Popen(_cli(interrupted, "--jobs", "2"), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(list(interrupted.glob("*.parquet"))) < 2:  # some runs finished, others in flight
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "no run finished within 60 s"
        time.sleep(0.05)
    workers = _children(process.pid)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stderr.close()
    finished_before = len(list(interrupted.glob("*.parquet")))
    assert finished_before < 8, "the benchmark ended before it could be killed: make its runs longer"
    # The workers die with it (parent-death signal): nothing keeps computing or writing.
    for _ in range(100):
        if not any(Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid) for pid in workers):
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"worker processes {workers} outlived the killed benchmark")

    rerun = subprocess.run(_cli(interrupted, "--jobs", "2"), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"runs already complete in {interrupted}" in rerun.stderr

    spec = BenchmarkSpec(problems=[GRID[1]], solvers=["soba", "aid-cg"], seeds=[0, 1, 2, 3],
                         run=RunConfig(max_steps=1000, max_time=60.0, n_evals=6, dtype="float64"))
    run_benchmark(expand(spec), spec.run, reference, executor=InlineExecutor())
    got, want = load_results(interrupted), load_results(reference)
    assert sorted(got["run_id"].unique()) == sorted(want["run_id"].unique())
    key = ["run_id", "step"]
    assert not got.duplicated(key).any()
    assert sorted(map(tuple, got[key].values)) == sorted(map(tuple, want[key].values))
    assert got.groupby("run_id")["final"].sum().eq(1).all() and (got[got["final"]]["status"] == "ok").all()
    assert not [p.name for p in interrupted.iterdir() if not p.name.endswith(".parquet")]  # no partial files


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return "zombie"  # gone
