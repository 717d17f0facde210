"""Synthetic result sets at leaderboard scale (thousands of runs), for the scale benchmarks.

A few real run tables come from `run_cell` on the tiny quadratic (the real schema, ~25
evaluation rows each); they are replicated with varied run_id, seed, solver, problem
parameters and device name, their times and metrics scaled per run so that times-to-target
differ and some runs miss the target, and a few runs turned into one-row failures. The result is
written like real results (one parquet file per run) and as bundles.

    python speed/scale_data.py build 10000 DIR        # DIR/results (one file per run), DIR/bundle-*
    python speed/scale_data.py measure show DIR/results
"""
from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PROBLEM = {"n_inner": 64, "n_outer": 64, "dim_x": 5, "dim_y": 5, "batch_size": 8}
TEMPLATE_SOLVERS = ("soba", "saba", "aid-cg", "itd")
# Real solver names, so labels, defaults and colours go through the real code paths.
SOLVERS = ("soba", "saba", "aid-cg", "itd", "fsla", "ttsa", "srba", "mrbo", "sustain", "vrbo", "f2sa", "bome",
           "stocbio", "bsa", "amigo", "aid-neumann", "aid-fp", "t-rhg", "fmd", "biadam", "shine", "jfb",
           "subbio", "lancbio", "esj")
DEVICE_NAMES = ("Intel(R) Xeon(R) Platinum 8480+", "AMD EPYC 7763 64-Core Processor")
N_BUNDLES = 4


def shape(n_runs: int) -> tuple[int, int, int]:
    """(problem instances, solvers, seeds), the product at least n_runs: 10,000 = 20 × 25 × 20."""
    solvers = min(len(SOLVERS), max(1, round(n_runs ** (1 / 3) * 1.25)))
    problems = max(1, round((n_runs / solvers) ** 0.5))
    seeds = max(1, -(-n_runs // (problems * solvers)))
    return problems, solvers, seeds


def template_runs() -> list[pd.DataFrame]:
    """Real run tables (the real schema): a few solvers on the tiny quadratic, 25 evaluations."""
    from benchopt_bilevel.runner import Cell, RunConfig, run_cell

    config = RunConfig(max_steps=2000, max_time=30, n_evals=25, dtype="float64")
    return [run_cell(Cell("quadratic", name, PROBLEM, {}, seed=0), config) for name in TEMPLATE_SOLVERS]


def synthetic_results(n_runs: int, templates: list[pd.DataFrame], seed: int = 0) -> pd.DataFrame:
    """N_RUNS runs in one table: templates replicated over problems × solvers × seeds × devices."""
    problems, solvers, seeds = shape(n_runs)
    generator = np.random.default_rng(seed)
    grid = pd.MultiIndex.from_product([range(problems), range(solvers), range(seeds)],
                                      names=["p", "s", "k"]).to_frame(index=False).iloc[:n_runs]
    grid["template"] = grid["s"] % len(templates)
    grid["device_name"] = np.array(DEVICE_NAMES)[grid["k"] % len(DEVICE_NAMES)]
    # Per run: a solver speed (time scale) and a quality (metric scale) that vary by solver and seed.
    grid["time_scale"] = np.exp(0.3 * grid["s"] % 2.0 + generator.normal(0, 0.2, len(grid)))
    grid["metric_scale"] = np.exp(generator.normal(0, 1.5, len(grid)))
    grid["run_id"] = [hashlib.sha256(f"{p}-{s}-{k}".encode()).hexdigest()[:16]
                      for p, s, k in zip(grid["p"], grid["s"], grid["k"])]
    grid["problem_params"] = [json.dumps({**PROBLEM, "dim_x": 5 + p}, sort_keys=True) for p in grid["p"]]
    frames = []
    for index, template in enumerate(templates):
        runs = grid[grid["template"] == index]
        # The template's rows once per run, run after run.
        order = np.tile(np.arange(len(template)), len(runs))
        rows = template.iloc[order].reset_index(drop=True)
        per_row = runs.iloc[np.repeat(np.arange(len(runs)), len(template))].reset_index(drop=True)
        rows["run_id"] = per_row["run_id"].to_numpy()
        rows["seed"] = rows["idx_rep"] = per_row["k"].to_numpy()
        rows["solver"] = np.array(SOLVERS)[per_row["s"].to_numpy()]
        rows["solver_name"] = rows["solver"]
        rows["problem_params"] = per_row["problem_params"].to_numpy()
        rows["p_dataset_dim_x"] = 5 + per_row["p"].to_numpy()
        rows["device_name"] = per_row["device_name"].to_numpy()
        rows["time"] = rows["time"] * per_row["time_scale"].to_numpy()
        for column in [c for c in rows if c.startswith("objective_") and c != "objective_name"]:
            rows[column] = rows[column] * per_row["metric_scale"].to_numpy()
        frames.append(rows)
    table = pd.concat(frames, ignore_index=True)
    # 2% of the runs fail: keep their first row only, as an error.
    failed = set(grid["run_id"].sample(frac=0.02, random_state=seed))
    is_failed = table["run_id"].isin(failed)
    table = table[~is_failed | (table["step"] == 0) | ~table.duplicated("run_id")].copy()
    table.loc[table["run_id"].isin(failed), ["status", "stop_reason", "message", "final"]] = \
        ["error", "exception", "RuntimeError: synthetic failure", True]
    return table.sort_values(["run_id", "step"], kind="stable").reset_index(drop=True)


def write_results(table: pd.DataFrame, directory: Path) -> int:
    """One parquet file per run, like the runner writes them; returns the number of files."""
    directory.mkdir(parents=True, exist_ok=True)
    from benchopt_bilevel.results import SCHEMA_MARKER, SCHEMA_VERSION

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}),
                                           SCHEMA_MARKER: str(SCHEMA_VERSION).encode()})
    run_ids = table["run_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, run_ids[1:] != run_ids[:-1]])
    ends = np.r_[starts[1:], len(run_ids)]
    for start, end in zip(starts, ends):
        pq.write_table(arrow.slice(start, end - start), directory / f"{run_ids[start]}.parquet")
    return len(starts)


def write_bundles(table: pd.DataFrame, directory: Path, n_bundles: int = N_BUNDLES) -> list[Path]:
    """The runs split across N_BUNDLES bundles (as from N machines), each overlapping the next by 10%."""
    from benchopt_bilevel.publishing import write_bundle

    run_ids = table["run_id"].unique()
    size = len(run_ids) // n_bundles
    paths = []
    for index in range(n_bundles):
        chosen = run_ids[index * size: (index + 1) * size + size // 10]
        path = directory / f"bundle-{index}"
        write_bundle(table[table["run_id"].isin(chosen)], path)
        paths.append(path)
    return paths


def build(n_runs: int, directory: str | os.PathLike) -> Path:
    """DIRECTORY/results (one file per run) and DIRECTORY/bundle-* for N_RUNS runs; reused when present."""
    directory = Path(directory)
    done = directory / "done"
    if done.is_file():
        return directory
    templates_path = directory.parent / "templates.parquet"
    if templates_path.is_file():
        stored = pd.read_parquet(templates_path)
        templates = [group.reset_index(drop=True) for _, group in stored.groupby("solver", sort=False)]
    else:
        templates = template_runs()
        directory.parent.mkdir(parents=True, exist_ok=True)
        pd.concat(templates, ignore_index=True).to_parquet(templates_path)
    table = synthetic_results(n_runs, templates)
    write_results(table, directory / "results")
    write_bundles(table, directory)
    done.write_text(json.dumps({"runs": int(table["run_id"].nunique()), "rows": len(table)}))
    return directory


# -- the measured operations (each run in its own process, for its peak RSS) ----------------------
def operation(name: str, directory: Path) -> None:
    """One user-facing operation on a built set: load, show, score or publish."""
    from click.testing import CliRunner

    from benchopt_bilevel.cli import main
    from benchopt_bilevel.results import load_results

    if name == "load":
        load_results(directory / "results")
        return
    bundles = sorted(str(p) for p in directory.glob("bundle-*"))
    args = {"show": ["show", str(directory / "results")],
            "score": ["score", *bundles],
            "publish": ["publish", *bundles, "--site", str(directory / "site")]}[name]
    result = CliRunner().invoke(main, args, catch_exceptions=False, env={"COLUMNS": "80"})
    if result.exit_code != 0:
        raise RuntimeError(f"{name} failed: {result.output[-2000:]}")


def measure(name: str, directory: str | os.PathLike) -> dict[str, float]:
    """Wall seconds and peak RSS (bytes) of OPERATION on DIRECTORY, in a fresh process (imports
    included in the memory, not in the time)."""
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); import scale_data; "
            "from pathlib import Path; import benchopt_bilevel.cli, benchopt_bilevel.site, matplotlib.pyplot; "
            "t = time.perf_counter(); scale_data.operation(sys.argv[2], Path(sys.argv[3])); "
            "print(time.perf_counter() - t)")
    process = subprocess.Popen([sys.executable, "-c", code, str(Path(__file__).parent), name, str(directory)],
                               stdout=subprocess.PIPE, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = status
    if status != 0:
        raise RuntimeError(f"{name} on {directory} failed (status {status})")
    # ru_maxrss is in KiB on Linux.
    return {"seconds": float(output.strip().splitlines()[-1]), "peak_bytes": usage.ru_maxrss * 1024}


def page_megabytes(directory: str | os.PathLike) -> dict[str, float]:
    """Sizes (MB) of the site's index.html, of its largest page and of all its pages."""
    sizes = {p.name: p.stat().st_size / 2 ** 20 for p in (Path(directory) / "site").glob("*.html")}
    return {"index": sizes.get("index.html", 0.0), "largest": max(sizes.values(), default=0.0),
            "all": sum(sizes.values()), "pages": len(sizes)}


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "build":
        started = time.perf_counter()
        print(build(int(sys.argv[2]), sys.argv[3]), f"{time.perf_counter() - started:.1f} s")
    elif command == "measure":
        print(measure(sys.argv[2], Path(sys.argv[3])))
