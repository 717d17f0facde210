"""Export results as benchmark folders that benchopt's own tools (`benchopt plot`,
`benchopt generate-results`, benchopt 1.10) read and aggregate correctly.

Layout, one folder per problem instance:

    ROOT/<problem>-<hash of its parameters>/
        benchmark_meta.json        the benchmark's name, for `generate-results`
        objective.py               a stub naming the benchmark, for `benchopt plot` (it cannot run)
        outputs/<setting>.parquet  every solver and seed run with one setting (device, device
                                   model, dtype, compiled): benchopt's unit of "one benchmark run"

benchopt aggregates seeds row by row on `stop_val`: for each solver it takes, at each stop_val,
the median over `idx_rep` of the last value of each seed (forward-filled), and the median of
`time`. Our runs are evaluated at times that differ from seed to seed, so the export resamples
each run onto a grid shared by the seeds of its solver: the sorted union of their evaluation
times, from the time every seed has its first evaluation on. At each grid time a run contributes
its last evaluation at or before it (what the solver had reached by then; after its end, its
final evaluation), `stop_val` is the grid index and `time` the grid time. benchopt's median at a
stop_val is then the median over all seeds of what each had reached at that time, and its last
point is the median of the final values. Because every seed has the same time at a grid point,
benchopt's time band (quantiles of the time seeds took to reach a stop_val) has zero width; the
spread over seeds shows in its box plots.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import atomic_write

# benchopt 1.10's system information (benchopt/utils/sys_info.py). Its result page reads them as a
# set (a partial set crashes it), so every one is written, empty when our runs do not record it.
BENCHOPT_SYSINFO = ("env-OMP_NUM_THREADS", "platform", "platform-architecture", "platform-release",
                    "platform-version", "system-cpus", "system-processor", "system-ram (GB)",
                    "version-cuda", "version-numpy", "version-numpy-libs", "version-scipy",
                    "benchmark-git-tag")
# Metric columns of our schema without benchopt's `objective_` prefix.
UNPREFIXED_METRICS = ("hypergradient_error", "hypergradient_cosine")
# One output file per setting: runs of different settings (step paths included: eager, compiled
# and fast steps time different things) are different benchmark runs.
SETTING = ["device", "device_name", "dtype", "path"]

OBJECTIVE_STUB = '''"""Exported by benchopt-bilevel: results only, this benchmark cannot be run by benchopt."""
from benchopt import BaseObjective


class Objective(BaseObjective):
    name = {name!r}
    url = None

    def set_data(self, **data):
        raise RuntimeError("exported results only: run the benchmark with benchopt-bilevel")

    def evaluate_result(self, **result):
        raise RuntimeError("exported results only: run the benchmark with benchopt-bilevel")

    def get_one_result(self):
        raise RuntimeError("exported results only: run the benchmark with benchopt-bilevel")

    def get_objective(self):
        raise RuntimeError("exported results only: run the benchmark with benchopt-bilevel")
'''


def parametrized_name(name: str, params: dict[str, Any]) -> str:
    """benchopt's `name[k=v,...]`, keys sorted as benchopt sorts them (plain `sorted`)."""
    if not params:
        return name
    return f"{name}[{','.join(f'{key}={params[key]}' for key in sorted(params))}]"


def resample_run(run: pd.DataFrame, grid: pd.Series) -> pd.DataFrame:
    """The run's rows at each grid time: its last evaluation at or before that time, with
    `stop_val` the grid index and `time` the grid time."""
    points = pd.DataFrame({"stop_val": range(len(grid)), "grid_time": grid.to_numpy(dtype=float)})
    rows = pd.merge_asof(points, run.sort_values("time").rename(columns={"time": "eval_time"}),
                         left_on="grid_time", right_on="eval_time", direction="backward")
    rows = rows.rename(columns={"grid_time": "time"}).drop(columns="eval_time")
    rows["final"] = rows["stop_val"] == rows["stop_val"].max()
    return rows


def shared_grid(runs: list[pd.DataFrame]) -> pd.Series:
    """The union of the runs' evaluation times, from the time every run has its first one on."""
    start = max(run["time"].min() for run in runs)
    times = pd.concat([run["time"] for run in runs]).drop_duplicates().sort_values()
    return times[times >= start].reset_index(drop=True)


def _evaluated(results: pd.DataFrame) -> pd.DataFrame:
    """Rows of runs with at least one evaluation (a skipped run, or one that failed before its
    first evaluation, has no curve)."""
    has_value = results["objective_value"].notna().groupby(results["run_id"]).transform("any")
    return results[has_value]


def _solver_description(solver: str) -> str:
    from .registry import get_solver  # noqa: PLC0415 - only for the page's descriptions

    try:
        return get_solver(solver).description
    except Exception:  # noqa: BLE001 - a solver no longer registered still exports
        return ""


def _sysinfo(runs: pd.DataFrame) -> dict[str, Any]:
    """benchopt's system columns, from what our provenance records (processor model, threads)."""
    first = runs.iloc[0]
    info: dict[str, Any] = {key: "" for key in BENCHOPT_SYSINFO}
    info["system-processor"] = str(first.get("device_name", ""))
    info["env-OMP_NUM_THREADS"] = str(first.get("threads", ""))
    info["benchmark-git-tag"] = str(first.get("git_revision", ""))
    return info


def benchopt_table(results: pd.DataFrame) -> pd.DataFrame:
    """Runs of ONE problem instance and setting as one benchopt table (see the module docstring)."""
    results = _evaluated(results)
    frames = []
    for _, solver_runs in results.groupby(["solver", "solver_params"], sort=True):
        runs = [run.drop(columns="stop_val") for _, run in solver_runs.groupby("run_id", sort=True)]
        grid = shared_grid(runs)
        frames += [resample_run(run, grid) for run in runs]
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    problem_params = json.loads(table["problem_params"].iloc[0])
    dataset_params = {k: v for k, v in problem_params.items() if k != "dataset"}
    table["objective_name"] = parametrized_name(table["problem"].iloc[0], problem_params)
    table["dataset_name"] = parametrized_name(table["dataset"].iloc[0], dataset_params)
    table["solver_name"] = [parametrized_name(s, json.loads(p))
                            for s, p in zip(table["solver"], table["solver_params"])]
    table["solver_description"] = table["solver"].map(_solver_description)
    table["idx_rep"] = table["seed"]
    table["run_date"] = table["timestamp"]
    table = table.rename(columns={m: f"objective_{m}" for m in UNPREFIXED_METRICS})
    # Not one of our run files: no schema marker, so `load_results` never counts these rows.
    table = table.drop(columns=["schema_version"], errors="ignore")
    return table.assign(**_sysinfo(table))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def instance_folder(problem: str, problem_params: str) -> str:
    """A short, stable folder name of a problem instance: name and a hash of its parameters."""
    return f"{problem}-{hashlib.sha1(problem_params.encode()).hexdigest()[:8]}"


def _write_parquet(table: pd.DataFrame, path: Path) -> Path:
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    return atomic_write(path, lambda handle: pq.write_table(arrow, handle))


def _step_path(runs: pd.DataFrame) -> pd.Series:
    """Each row's step path; rows written before the column existed read it from `compiled`."""
    compiled = runs["compiled"].fillna(False).astype(bool) if "compiled" in runs else pd.Series(False, index=runs.index)
    implied = compiled.map({True: "compiled", False: "eager"})
    return runs["path"].fillna(implied).astype(str) if "path" in runs else implied


def export_benchopt(results: pd.DataFrame, root: str | os.PathLike) -> list[Path]:
    """Write one benchopt benchmark folder per problem instance under ROOT; returns the
    output files written (one per setting of each instance)."""
    root = Path(root)
    written: list[Path] = []
    if results.empty:
        return written
    for (problem, params), instance in results.groupby(["problem", "problem_params"], sort=True):
        folder = root / instance_folder(problem, params)
        instance = instance.assign(path=_step_path(instance))
        tables = [benchopt_table(runs) for _, runs in instance.groupby(SETTING, sort=True)]
        tables = [t for t in tables if not t.empty]
        if not tables:
            continue
        (folder / "outputs").mkdir(parents=True, exist_ok=True)
        name = tables[0]["objective_name"].iloc[0]
        (folder / "benchmark_meta.json").write_text(json.dumps({"pretty_name": name}, indent=1) + "\n")
        (folder / "objective.py").write_text(OBJECTIVE_STUB.format(name=name))
        for table in tables:
            path = str(table["path"].iloc[0])
            setting = _slug("-".join(str(table[key].iloc[0]) for key in SETTING if key != "path")
                            + ("" if path == "eager" else f"-{path}"))
            written.append(_write_parquet(table, folder / "outputs" / f"{setting}.parquet"))
    return written


def export_directories(directories: Iterable[str | os.PathLike], root: str | os.PathLike) -> list[Path]:
    """Load the results of DIRECTORIES and export them under ROOT."""
    from .results import load_results  # noqa: PLC0415

    results = pd.concat([load_results(d) for d in directories], ignore_index=True)
    return export_benchopt(results, root)
