"""What an executor is: something that runs tasks (one benchmark run each) somewhere and yields
each run's rows as it ends, in any order.

Workers write their own result files (the runner writes atomically); when a worker cannot (it
was killed, crashed or timed out), the watching process writes the run's status row instead,
so every task yields exactly one table and leaves exactly one file.
"""
from __future__ import annotations

import abc
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import pandas as pd

from ..cells import Cell, RunConfig
from ..resume import COMPLETE, run_status
from ..results import failure_table, write_run


@dataclass(frozen=True)
class Task:
    """One run to do: the cell, how to run it, where its file goes, and its id (file name)."""

    cell: Cell
    config: RunConfig
    output_dir: str
    run_id: str


class Executor(abc.ABC):
    """Runs tasks; `run` yields one table per task as the tasks end."""

    name = ""
    threads: int = 0  # threads per worker, recorded in every row (0: the process default)

    @abc.abstractmethod
    def run(self, tasks: Iterable[Task]) -> Iterator[pd.DataFrame]:
        ...

    def describe(self) -> str:
        return self.name


def default_threads(jobs: int) -> int:
    """Threads per worker: the machine's cores shared evenly, at least one."""
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def failed_run(task: Task, status: str, stop_reason: str, message: str, threads: int) -> pd.DataFrame:
    """The row of a run whose worker could not write it; written here, atomically.

    If the worker did finish writing a complete file before it died, that file is kept.
    """
    path = Path(task.output_dir) / f"{task.run_id}.parquet"
    if run_status(path) in COMPLETE:
        return pd.read_parquet(path)
    table = failure_table(task.cell, task.config, status, stop_reason, message, threads=threads)
    write_run(table, task.output_dir, task.run_id)
    return table
