"""Resume: a rerun of the same benchmark skips the runs already complete in its directory.

A run's identity is `provenance.cell_identity` (problem, dataset, solver, both parameter
sets, seed, device, dtype, compiled, run configuration, and the hash of the code it executes:
solver, problem, every project module they use and the engine core); its id names its file,
`<run_id>.parquet`. So:
- complete (a readable file whose final row says ok, diverged or skipped) → skipped, its rows
  reused;
- failed (error, timeout), unreadable, or with no final row → run again; the new file
  replaces the old one atomically, so rows are never duplicated;
- a change to the code or the configuration changes the id: the run is new;
- `force` reruns everything.
Temporary files left by a process killed mid-write (`.<run_id>.*.tmp`) are removed first.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

COMPLETE = ("ok", "diverged", "skipped")


def run_status(path: str | os.PathLike) -> str | None:
    """The status of the run stored at `path`, or None if absent, unreadable or unfinished."""
    try:
        table = pq.read_table(path, columns=["status", "final"]).to_pandas()
    except Exception:  # noqa: BLE001 - missing or corrupt: not complete
        return None
    final = table[table["final"].astype(bool)]
    return str(final["status"].iloc[-1]) if len(final) == 1 else None


def remove_partial_files(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of interrupted writes; returns what was removed.

    Call it only when no other process writes into `directory` (before a benchmark starts).
    """
    removed = []
    for path in Path(directory).glob(".*.tmp"):
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def split_complete(run_ids: list[str], directory: str | os.PathLike,
                   force: bool = False) -> tuple[list[str], dict[str, pd.DataFrame]]:
    """(ids still to run, in order; rows of the complete ones by id)."""
    directory = Path(directory)
    todo: list[str] = []
    done: dict[str, pd.DataFrame] = {}
    for run_id in run_ids:
        path = directory / f"{run_id}.parquet"
        if not force and run_id not in done and run_status(path) in COMPLETE:
            done[run_id] = pd.read_parquet(path)
        elif run_id not in done and run_id not in todo:  # the same cell twice is run once
            todo.append(run_id)
    return todo, done
