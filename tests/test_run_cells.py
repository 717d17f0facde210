"""`run_cells`: the benchmark's machinery (executor, resume, progress) with each cell's rows
returned in the order of the cells, as tuning needs them."""
from __future__ import annotations

from benchopt_bilevel.benchmark import run_cells
from benchopt_bilevel.executors.inline import InlineExecutor
from benchopt_bilevel.runner import Cell, RunConfig

from conftest import WELL_CONDITIONED

CONFIG = RunConfig(max_steps=10, max_time=30, n_evals=3, dtype="float64")
CELLS = [Cell("quadratic", "soba", WELL_CONDITIONED, {}, seed) for seed in (2, 0, 1)]


class Counting(InlineExecutor):
    """Runs inline, yields the runs in reverse order (executors yield as runs end, in any
    order), and remembers how many it ran."""

    def __init__(self) -> None:
        super().__init__()
        self.ran = 0

    def run(self, tasks):
        tables = list(super().run(tasks))
        self.ran += len(tables)
        yield from reversed(tables)


def test_rows_come_back_in_the_order_of_the_cells_and_resume(tmp_path):
    executor = Counting()
    tables = run_cells([*CELLS, CELLS[0]], CONFIG, tmp_path, executor=executor)
    assert executor.ran == 3  # the same cell twice runs once ...
    assert [int(t["seed"].iloc[-1]) for t in tables] == [2, 0, 1, 2]  # ... and is returned twice
    again = Counting()
    reused = run_cells(CELLS[::-1], CONFIG, tmp_path, executor=again)
    assert again.ran == 0 and [int(t["seed"].iloc[-1]) for t in reused] == [1, 0, 2]
    assert [t["run_id"].iloc[-1] for t in reused] == [t["run_id"].iloc[-1] for t in tables[2::-1]]


class CodeChanged(InlineExecutor):
    """Yields runs as if the engine's code had changed while they ran: a new code hash, a new id."""

    def run(self, tasks):
        for table in super().run(tasks):
            yield table.assign(code_hash="changed", run_id=table["run_id"] + "-new")


def test_a_run_whose_code_changed_while_it_ran_is_still_its_cells(tmp_path):
    tables = run_cells(CELLS, CONFIG, tmp_path, executor=CodeChanged())
    assert [int(t["seed"].iloc[-1]) for t in tables] == [2, 0, 1]
    assert all(t["run_id"].iloc[-1].endswith("-new") for t in tables)
