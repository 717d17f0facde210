"""Export for benchopt: the benchmark folder and its merged file on a real time-budget run (two
solvers, two seeds), benchopt's own page on it (when benchopt is installed), and result folders
that hold a benchopt file counting each run once."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from benchopt_bilevel.benchopt_export import BENCHOPT_SYSINFO, export_benchopt
from benchopt_bilevel.cli import main
from benchopt_bilevel.results import load_results, result_files
from benchopt_bilevel.runner import Cell, RunConfig, run_cell

PROBLEM = {"n_inner": 64, "n_outer": 64, "dim_x": 5, "dim_y": 5, "batch_size": 16}
SOLVERS = {"soba": {"step_inner": 0.1, "outer_ratio": 0.5}, "saba": {"step_inner": 0.05}}
SEEDS = (0, 1)


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("results")
    for solver, params in SOLVERS.items():
        for seed in SEEDS:
            run_cell(Cell("quadratic", solver, PROBLEM, params, seed=seed), RunConfig(max_time=0.3), directory)
    return directory


@pytest.fixture(scope="module")
def exported(results_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("benchopt")
    result = CliRunner().invoke(main, ["export-benchopt", str(results_dir), "-o", str(root)])
    assert result.exit_code == 0, result.output
    assert result.output.count("wrote ") == 1
    return root


def _output(root: Path) -> pd.DataFrame:
    (folder,) = [p for p in root.iterdir() if p.is_dir()]
    (output,) = (folder / "outputs").glob("*.parquet")
    return pd.read_parquet(output)


def expected_curves(raw: pd.DataFrame, metric: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per solver label: the shared grid (union of its seeds' evaluation times from the latest
    first one) and the median over seeds of each seed's last value at or before each grid time."""
    curves = {}
    for solver, runs in raw.groupby("solver"):
        by_seed = [run.sort_values("time") for _, run in runs.groupby("seed")]
        start = max(run["time"].min() for run in by_seed)
        grid = np.unique(runs["time"][runs["time"] >= start])
        values = [run[metric].to_numpy()[np.searchsorted(run["time"].to_numpy(), grid, side="right") - 1]
                  for run in by_seed]
        curves[solver] = (grid, np.median(values, axis=0))
    return curves


def test_export_is_one_benchmark_folder_with_one_merged_file(exported):
    (folder,) = [p for p in exported.iterdir() if p.is_dir()]
    meta = json.loads((folder / "benchmark_meta.json").read_text())
    assert meta["pretty_name"].startswith("quadratic[")
    assert "class Objective(BaseObjective)" in (folder / "objective.py").read_text()
    assert len(list((folder / "outputs").glob("*.parquet"))) == 1
    table = _output(exported)
    assert set(table["solver"]) == set(SOLVERS) and set(table["idx_rep"]) == set(SEEDS)


def test_export_has_benchopt_names_and_columns(exported, results_dir):
    table, raw = _output(exported), load_results(results_dir)
    (objective,) = table["objective_name"].unique()
    keys = [part.split("=")[0] for part in objective[len("quadratic["):-1].split(",")]
    assert keys == sorted(keys) and set(keys) == set(json.loads(raw["problem_params"].iloc[0]))
    assert table["dataset_name"].str.startswith("quadratic[").all()
    for name in table["solver_name"].unique():
        keys = [part.split("=")[0] for part in name[name.index("[") + 1:-1].split(",")]
        assert keys == sorted(keys), name
    assert "saba[memory_init=zero,outer_ratio=1.0,step_inner=0.05]" in set(table["solver_name"])
    assert set(BENCHOPT_SYSINFO) <= set(table.columns)
    assert "objective_hypergradient_error" in table and "hypergradient_error" not in table
    metrics = [c for c in raw if c.startswith("objective_") and c != "objective_name"] + ["hypergradient_error"]
    assert {c if c.startswith("objective_") else f"objective_{c}" for c in metrics} <= set(table.columns)
    run_dates = table.groupby("run_id")["run_date"].first()
    assert run_dates.to_dict() == raw.groupby("run_id")["timestamp"].first().to_dict()


def test_seeds_share_stop_val_and_time(exported, results_dir):
    table, raw = _output(exported), load_results(results_dir)
    assert raw.groupby("solver")["step"].apply(lambda s: s.nunique()).min() > 1
    for solver, rows in table.groupby("solver"):
        grids = [run.sort_values("stop_val")[["stop_val", "time"]].to_numpy() for _, run in rows.groupby("idx_rep")]
        assert len(grids) == len(SEEDS)
        np.testing.assert_array_equal(grids[0], grids[1])
        assert np.all(np.diff(grids[0][:, 1]) > 0)
        # The raw steps of two seeds differ at shared points: the grid, not the step, is shared.
        steps = rows.pivot(index="stop_val", columns="idx_rep", values="step")
        assert (steps[0] != steps[1]).any(), solver
        expected_grid, _ = expected_curves(raw[raw["solver"] == solver], "objective_value")[solver]
        np.testing.assert_allclose(grids[0][:, 1], expected_grid)
    # Each seed's last point is its run's final evaluation.
    finals = raw[raw["final"]].set_index("run_id")["objective_value"]
    last = table[table["final"]].set_index("run_id")["objective_value"]
    pd.testing.assert_series_equal(last.sort_index(), finals.sort_index(), check_names=False)


def test_a_benchopt_file_in_the_results_folder_is_not_counted(results_dir, exported, tmp_path):
    folder = tmp_path / "results"
    shutil.copytree(results_dir, folder)
    before = load_results(folder)
    # What `benchopt merge` writes from our files (pandas in, pandas out), our export, and a copy.
    merged = pd.concat([pd.read_parquet(p) for p in result_files(folder)], ignore_index=True)
    merged.to_parquet(folder / "merged_results.parquet")
    (output,) = exported.glob("*/outputs/*.parquet")
    shutil.copy(output, folder / "export.parquet")
    shutil.copy(result_files(results_dir)[0], folder / "zz-copy.parquet")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        after = load_results(folder)
    assert len(after) == len(before) and after["run_id"].nunique() == len(SOLVERS) * len(SEEDS)
    named = " ".join(str(w.message) for w in caught)
    assert all(name in named for name in ("merged_results.parquet", "export.parquet", "zz-copy.parquet"))


def test_benchopt_renders_the_median_over_seeds(exported, results_dir, tmp_path):
    pytest.importorskip("benchopt", reason="benchopt is not installed (pip install benchopt)")
    done = subprocess.run([sys.executable, "-m", "benchopt", "generate-results", "--root", str(exported),
                           "--no-display"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (page,) = [p for p in (tmp_path / "html").glob("*_*.html")]
    line = next(line for line in page.read_text().splitlines() if "window._plots =" in line)
    plots = json.loads(line.split("window._plots =", 1)[1].strip().rstrip(";"))
    raw = load_results(results_dir)
    for metric in ("objective_value", "objective_hypergradient_error"):
        column = metric if metric in raw else metric.removeprefix("objective_")
        curves = expected_curves(raw, column)
        (key,) = [k for k in plots["objective_curve"] if k.endswith(f"_{metric}_Time")]
        traces = {trace["label"].split("[")[0]: trace for trace in plots["objective_curve"][key]["data"]}
        assert set(traces) == set(SOLVERS)
        for solver, (grid, median) in curves.items():
            np.testing.assert_allclose(traces[solver]["x"], grid)
            np.testing.assert_allclose(traces[solver]["y"], median)
    # `benchopt plot` reads the folder too (the objective stub) and renders its newest file.
    (folder,) = [p for p in exported.iterdir() if p.is_dir()]
    done = subprocess.run([sys.executable, "-m", "benchopt", "plot", str(folder), "--no-display"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert list((folder / "outputs").glob("*.html"))


def test_nothing_to_export_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(main, ["export-benchopt", str(tmp_path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1 and result.output.strip() == f"Error: no evaluated runs in {tmp_path}"
