"""`list`, `score`, `compare` and `run`'s progress lines fit an 80-column terminal (and CI logs,
where rich assumes 80): no line is longer than 80 characters and no name is cut."""
from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner
from rich.console import Console

from benchopt_bilevel import cli
from benchopt_bilevel.benchmark import progress_lines
from benchopt_bilevel.cli import main
from benchopt_bilevel.registry import problems, solvers
from benchopt_bilevel.results import load_results, write_run
from benchopt_bilevel.runner import Cell, RunConfig, run_cell

WIDTH = 80
PROBLEM = {"n_inner": 32, "n_outer": 32, "dim_x": 3, "dim_y": 3, "batch_size": 8}
LONG_DEVICE = "AMD EPYC 7763 64-Core Processor with a very long marketing name (rev 2)"
SOLVER_SETTINGS = ({"step_inner": 0.05}, {"step_inner": 0.1})


@pytest.fixture(scope="module")
def result_sets(tmp_path_factory):
    """Base and new: soba with two settings (labels `soba[step_inner=...]`) and saba, on two
    problem instances, measured on a CPU with a long name; new is slower."""
    base = tmp_path_factory.mktemp("base")
    config = RunConfig(max_time=10.0, max_steps=20, n_evals=4, dtype="float64")
    for dim_x in (3, 4):
        for solver, params in [("soba", SOLVER_SETTINGS[0]), ("soba", SOLVER_SETTINGS[1]), ("saba", {})]:
            run_cell(Cell("quadratic", solver, {**PROBLEM, "dim_x": dim_x}, params, seed=0), config, base)
    table = load_results(base)
    table["device_name"] = LONG_DEVICE
    new = tmp_path_factory.mktemp("new")
    for target, scale in ((base, 1.0), (new, 3.0)):
        for run_id, rows in table.groupby("run_id"):
            write_run(rows.assign(time=rows["time"] * scale), target, run_id)
    return base, new


def _lines(output: str) -> list[str]:
    return output.splitlines()


def _assert_fits(output: str) -> None:
    too_long = [line for line in _lines(output) if len(line) > WIDTH]
    assert not too_long, "\n".join(too_long)


def _assert_whole(output: str, names) -> None:
    for name in names:
        assert any(name in line for line in _lines(output)), f"{name!r} is cut or missing:\n{output}"


LABELS = ("soba[step_inner=0.05]", "soba[step_inner=0.1]", "saba")


def test_score_fits_80_columns(result_sets, monkeypatch):
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    base, _ = result_sets
    result = CliRunner().invoke(main, ["score", str(base), "--per-problem", "--target", "quadratic=1e9"])
    assert result.exit_code == 0, result.output
    _assert_fits(result.output)
    _assert_whole(result.output, [*LABELS, LONG_DEVICE.split(" with")[0], "quadratic[dim_x=3]"])


def test_compare_fits_80_columns(result_sets, monkeypatch):
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    base, new = result_sets
    result = CliRunner().invoke(main, ["compare", str(base), str(new), "--target", "quadratic=1e9",
                                                       "--fail-on-regression", "1.5"])
    assert result.exit_code == 1, result.output  # three times slower: a regression
    _assert_fits(result.output)
    _assert_whole(result.output, [*LABELS, "quadratic[dim_x=4]", "slower"])


@pytest.mark.parametrize("what", ["solvers", "problems", "datasets"])
def test_list_fits_80_columns(what, monkeypatch):
    monkeypatch.setattr(cli, "console", Console(width=WIDTH, color_system=None))
    result = CliRunner().invoke(main, ["list", what])
    assert result.exit_code == 0, result.output
    _assert_fits(result.output)
    names = {"solvers": solvers(), "problems": problems()}.get(what, {})
    _assert_whole(result.output, [f"│ {name} " for name in names])
    if what == "solvers":  # every parameter whole: name=default on one line
        _assert_whole(result.output, ["n_linear_steps=10", "warm_start_v=True"])


def test_progress_lines_fit_80_columns():
    final = pd.Series({"status": "error", "stop_reason": "exception",
                       "message": "RuntimeError: " + "a very long explanation " * 20 + "\nsecond line"})
    lines = progress_lines(12, 340, "hypercleaning deq-implicit seed=11", final, 1234.5, width=WIDTH)
    assert lines[0] == "[12/340] hypercleaning deq-implicit seed=11: error (exception) at 1234.5s"
    assert lines[1].startswith("    RuntimeError: a very long") and lines[1].endswith("...")
    assert all(len(line) <= WIDTH for line in lines)
    ok = progress_lines(1, 2, "quadratic soba seed=0", pd.Series({"status": "ok", "stop_reason": "max_steps"}), 0.5)
    assert ok == ["[1/2] quadratic soba seed=0: ok (max_steps) at 0.5s"]
