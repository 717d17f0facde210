"""Result tables: one parquet file per run, written atomically, read back as one DataFrame.

Schema (version SCHEMA_VERSION): one row per (run, evaluation point).
- identity: run_id, problem, dataset, solver, solver_params (JSON), problem_params (JSON),
  seed, device, dtype, compiled, code_hash
- measures: step, time (synchronized seconds of steps only), warmup_time (first chunk,
  compilation or fast build included), path (how steps ran: eager, compiled, or fast, the
  cached library of `fast.py`), build_cache_hit (fast rows: whether the library came from the
  build cache; None otherwise), oracle_<kind> (calls so far, full-batch calls as <kind>_full),
  oracle_total, peak_memory_bytes (the run's own peak above its start, -1 when unknown) and
  memory_method (how it was measured: cuda_allocated_delta, linux_hwm_delta, process_peak_rss
  or unknown; see memory.py)
- metrics: objective_<name> (computed by the problem, never timed), hypergradient_error and
  hypergradient_cosine (where the problem knows the exact ∇h)
- outcome: status (ok / diverged / error / timeout / skipped), stop_reason, message, final
- provenance: schema_version, package_version, git_revision, torch_version, python_version,
  device_name, threads, allocator (tcmalloc, jemalloc or system: `allocator.py`),
  native_kernels (the native kernels loaded in the run's process, `native.py`; "" for none), hostname,
  timestamp
- benchopt-style columns for pandas users: objective_name, dataset_name, solver_name, idx_rep,
  stop_val (= step), objective_value, p_solver_*, p_dataset_*. benchopt's own tools need the
  merged, resampled tables of `benchopt_export`.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from .atomic import atomic_write
from .cells import Cell, RunConfig, validate
from .oracles import ORACLE_KINDS
from .params import params_to_dict
from .provenance import cell_identity, provenance

SCHEMA_VERSION = 1
STATUSES = ("ok", "diverged", "error", "timeout", "skipped")
# Key of the parquet metadata that marks a file written by `write_run`.
SCHEMA_MARKER = b"benchopt_bilevel_schema"


def oracle_columns(counts: Mapping[str, float], total: float) -> dict[str, float]:
    """The oracle columns of an evaluation row: calls so far of every kind (full-batch calls as
    <kind>_full, zero when never called), and their weighted total."""
    columns = {f"oracle_{kind}{suffix}": float(counts.get(kind + suffix, 0.0))
               for kind in ORACLE_KINDS for suffix in ("", "_full")}
    return {**columns, "oracle_total": float(total)}


def no_rows(peak_memory_bytes: int, memory_method: str = "unknown") -> list[dict[str, Any]]:
    """The one row of a run that has no evaluation (skipped, or failed before the first one)."""
    return [{"step": 0, "time": 0.0, "oracle_total": 0.0, "peak_memory_bytes": peak_memory_bytes,
             "memory_method": memory_method}]


def result_table(rows: list[dict[str, Any]], outcome: dict[str, Any], identity: dict[str, Any], run_id: str,
                 solver_params: Any, problem_params: Any, device: torch.device, value_metric: str) -> pd.DataFrame:
    """A run's table: its evaluation rows, each with the run's identity, outcome and provenance,
    the last one marked `final`, and benchopt's core columns."""
    table = pd.DataFrame(rows)
    table["final"] = False
    table.loc[table.index[-1], "final"] = True
    for key, value in {**identity, "run_id": run_id, **outcome, "schema_version": SCHEMA_VERSION,
                       **provenance(device)}.items():
        table[key] = value
    solver_dict = params_to_dict(solver_params)
    table["objective_name"] = identity["problem"]
    table["dataset_name"] = identity["dataset"]
    table["solver_name"] = identity["solver"] + (
        "[" + ",".join(f"{k}={v}" for k, v in solver_dict.items()) + "]" if solver_dict else "")
    table["idx_rep"] = identity["seed"]
    table["stop_val"] = table["step"]
    # benchopt plots `objective_value`: the metric the problem names for it (NaN without evaluations).
    value_column = f"objective_{value_metric}"
    table["objective_value"] = table[value_column] if value_column in table else float("nan")
    for key, value in solver_dict.items():
        table[f"p_solver_{key}"] = value
    for key, value in params_to_dict(problem_params).items():
        table[f"p_dataset_{key}"] = value
    return table


def failure_table(cell: Cell, config: RunConfig, status: str, stop_reason: str, message: str,
                  **columns: Any) -> pd.DataFrame:
    """The one status row of a run that ended outside the runner (its worker was killed, crashed
    or timed out), written by whoever watched it. `columns` override provenance (e.g. threads)."""
    problem_cls, problem_params, _, solver_params = validate(cell)
    identity, run_id = cell_identity(cell, config)
    outcome = {"status": status, "stop_reason": stop_reason, "message": message, "warmup_time": float("nan"),
               # fast or auto: unknown whether the run got as far as its library
               "path": "compiled" if config.compile else "eager" if config.step_path == "eager" else None,
               "build_cache_hit": None}
    rows = no_rows(-1, "unknown")  # peak memory unknown: the process that ran it is gone
    table = result_table(rows, outcome, identity, run_id, solver_params, problem_params,
                         torch.device(identity["device"]), problem_cls.value_metric)
    for key, value in columns.items():
        table[key] = value
    return table


def write_run(table: pd.DataFrame, directory: str | os.PathLike, run_id: str) -> Path:
    """Write one run's rows to DIRECTORY/<run_id>.parquet atomically (temp file, fsync, rename).

    A reader, or a process killed mid-write, sees either the previous complete file or the new
    complete file, never a partial one.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{run_id}.parquet"
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}),
                                           SCHEMA_MARKER: str(SCHEMA_VERSION).encode()})
    return atomic_write(final, lambda handle: pq.write_table(arrow, handle))


def result_files(directory: str | os.PathLike) -> list[Path]:
    """The complete run files of a results directory (temp files start with a dot)."""
    return sorted(p for p in Path(directory).glob("*.parquet") if not p.name.startswith("."))


def load_results(directory: str | os.PathLike) -> pd.DataFrame:
    """Every run of DIRECTORY as one DataFrame, each run once. Skipped, each named in a warning:
    an unreadable file; a parquet file `write_run` did not write (no schema marker: e.g. one that
    benchopt merged from our files, or an export for benchopt), whose rows repeat runs; a file
    whose runs were already read from another file (a copy)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no results directory at {directory}")
    # Thousands of small files: ParquetFile.read is a third of read_table's cost per file (no
    # dataset layer), and the tables are joined in arrow and converted to pandas once (per-file
    # to_pandas and pd.concat were most of the time at 1,000 runs: docs/scaling.md).
    tables, seen = [], set()
    for path in result_files(directory):
        arrow, error = _read_run_file(path)
        if error is not None:
            warnings.warn(f"skipping unreadable result file {path}: {type(error).__name__}: {error}",
                          stacklevel=2)
            continue
        if SCHEMA_MARKER not in (arrow.schema.metadata or {}):
            warnings.warn(f"skipping {path}: not a benchopt-bilevel run file (no schema marker)", stacklevel=2)
            continue
        runs = set(arrow.column("run_id").drop_null().unique().to_pylist()) if "run_id" in arrow.column_names \
            else set()
        if runs & seen:
            warnings.warn(f"skipping {path}: its run was already read from another file", stacklevel=2)
            continue
        seen |= runs
        tables.append(arrow)
    if not tables:
        return pd.DataFrame()
    try:
        return pa.concat_tables(tables, promote_options="permissive").to_pandas()
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a column of two incompatible types: pandas makes it object
        return pd.concat([table.to_pandas() for table in tables], ignore_index=True, sort=False)


def _read_run_file(path: Path) -> tuple[pa.Table | None, Exception | None]:
    try:
        with pq.ParquetFile(path) as handle:
            return handle.read(), None
    except Exception as error:  # noqa: BLE001 - any corrupt file is skipped, by name
        return None, error
