"""The `hypergradients` command: the hypergradient-quality track of `hypergradients.py`.

Each (problem, estimator) sweep is written atomically to OUTPUT/hypergradients/ as its own
parquet file, so an interrupted track resumes where it stopped; `publish OUTPUT` then adds the
Hypergradients page (error-vs-cost Pareto plots and the cheapest estimator per threshold).
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import click
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import hypergradients as track
from .atomic import atomic_write
from .cli_leaderboard import user_errors
from .config import parse_seeds

SUBFOLDER = "hypergradients"
# Sized for a small machine (a few minutes on 2 cores); literature sizes only when asked with -p.
# The tiny DEQ: two 8×8 synthetic images, one batch (its exact equilibrium takes seconds).
DEFAULT_PROBLEMS = ("quadratic[n_inner=256,n_outer=256,dim_x=10,dim_y=10,batch_size=32]",
                    "logreg[n_train_max=640,batch_size=32]",
                    "deq[dataset=synthetic,config=tiny,image_size=8,batch_size=2,n_train=2,n_test=4,eval_iters=10]")


def _sweep_file(folder: Path, problem: str, sweep: track.Sweep, seeds: list[int], dtype: str) -> Path:
    identity = repr((problem, sweep.solver, sweep.knob, sweep.values, sorted(sweep.fixed.items()), seeds, dtype))
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return folder / f"{sweep.solver}-{digest}.parquet"


def _write(table: pd.DataFrame, path: Path) -> None:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, buffer.getvalue())


def load_track(directory: str | Path) -> pd.DataFrame:
    """Every measurement of the track in DIRECTORY (empty when it has none)."""
    files = sorted((Path(directory) / SUBFOLDER).glob("*.parquet"))
    files = [f for f in files if not f.name.startswith(".")]
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()


@click.command("hypergradients")
@click.option("-p", "--problem", "problem_specs", multiple=True, metavar="SPEC",
              help="problem[key=value,...] with an exact hypergradient; repeatable [default: a small quadratic, "
                   "a small logreg and the tiny DEQ, cli_hypergradients.DEFAULT_PROBLEMS].")
@click.option("-s", "--solver", "solver_names", multiple=True, metavar="NAME",
              help="only these estimators (repeatable) [default: every sweep of hypergradients.SWEEPS].")
@click.option("--seeds", default="0", show_default=True, help="Seeds of the stochastic estimators, e.g. 0-2.")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float64", show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("-o", "--output", default="results", show_default=True, type=click.Path(file_okay=False),
              help="results directory; the track goes to OUTPUT/hypergradients/.")
@click.option("--force", is_flag=True, help="Measure again sweeps already in OUTPUT.")
@user_errors
def hypergradients_command(problem_specs, solver_names, seeds, dtype, device, output, force) -> None:
    """Measure every estimator's hypergradient error against its cost (oracle calls, time)."""
    console = Console()
    problem_specs = list(problem_specs) or list(DEFAULT_PROBLEMS)
    sweeps = [sweep for name in solver_names for sweep in track.sweeps_by_label(name)] or list(track.SWEEPS)
    seed_list = parse_seeds(seeds)
    folder = Path(output) / SUBFOLDER
    for problem in problem_specs:
        for sweep in sweeps:
            path = _sweep_file(folder, problem, sweep, seed_list, dtype)
            if path.exists() and not force:
                console.print(f"[dim]{escape(problem)} · {sweep.label}: already measured ({path.name})[/dim]")
                continue
            table = track.run_track([problem], [sweep], seed_list, dtype, device, log=None)
            if table.empty:
                console.print(f"[dim]{escape(problem)} · {sweep.label}: skipped "
                              f"({escape(_skip_reason(problem, sweep, dtype, device))})[/dim]")
                continue
            _write(table, path)
            console.print(f"{escape(problem)} · {sweep.label}: {len(table)} measurements")
    table = load_track(output)
    table = table[table["problem"].isin(problem_specs)] if not table.empty else table
    if table.empty:
        console.print("no measurement")
        return
    summary = Table(title="cheapest estimator (oracle calls per step) reaching a relative error")
    for column in ("problem", "x", "y", "error ≤", "estimator", "calls", "time (ms)"):
        summary.add_column(column)
    for _, row in track.cheapest(table).iterrows():
        found = row["estimator"] is not None and row["estimator"] == row["estimator"]
        summary.add_row(escape(str(row["problem"])), str(row["x_point"]), str(row["y_point"]), f"{row['threshold']:g}",
                        _estimator_label(row) if found else "none",
                        f"{row['oracle_calls']:.0f}" if found else "–",
                        f"{1e3 * row['step_time']:.2f}" if found else "–")
    console.print(summary)
    for problem in problem_specs:
        if (table["problem"] == problem).any():
            path = track.plot_pareto(table, problem, folder / f"pareto-{_slug(problem)}.svg")
            console.print(f"plot: {path}")


def _estimator_label(row: pd.Series) -> str:
    budget = row["budget"]
    return str(row["estimator"]) + ("" if budget != budget else f" = {budget:g}")


def _skip_reason(problem: str, sweep: track.Sweep, dtype: str, device: str) -> str:
    instance = track._setup(problem, dtype, device)[1]
    return sweep.skip(instance) or f"{sweep.solver} cannot run on {problem}"


def _slug(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10] if not text.isidentifier() else text
