"""A benchmark: every (problem, solver, seed) cell, run on an executor with progress.

Every cell is validated before the first one runs (a typo never costs a half-finished
benchmark). Each run's rows are written atomically to its own file as soon as it ends; a rerun
into the same directory skips the runs already complete (see `resume`), so an interrupted
benchmark costs only the runs that were in flight.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from . import resume
from .config import DEFAULT_SEEDS, BenchmarkSpec
from .executors.base import Executor, Task
from .executors.inline import InlineExecutor
from .errors import UserError
from .params import parse_spec
from .provenance import cell_identity
from .reference_specs import Translation, same_value, translate
from .registry import get_problem
from .runner import Cell, RunConfig

# The embedded default benchmark, all offline: the literature-size quadratic, regularization
# selection on ijcnn1 and hyper-cleaning on the shipped MNIST subset; one solver per family, one
# seed, 4 s of steps per run (30 runs, 2 of them the black-box baselines' skips of
# hypercleaning, whose 3,200 weights are past their dimension limit; `make bench` runs them on
# 2 workers). Regularization
# selection runs with standardized features and an intercept from penalties e^−4: from the
# literature's start (no intercept, penalties 1) every method's model predicts the majority class
# for the whole run, so test accuracy would say nothing (docs/problems.md).
DEFAULT_PROBLEMS = ["quadratic", "logreg[standardize=true,intercept=true,x_init=-4]", "hypercleaning"]
DEFAULT_SOLVERS = ["itd", "aid-cg", "aid-neumann", "amigo", "soba", "saba", "bome", "f2sa", "optuna-tpe", "random-search"]
DEFAULT_MAX_TIME = 4.0
# What tells the cells of one benchmark apart (they share the run configuration): a run's identity
# without its code hash.
CELL_KEYS = ("problem", "solver", "problem_params", "solver_params", "seed")


def expand(spec: BenchmarkSpec) -> list[Cell]:
    """The cells of a benchmark, problems outermost (so a problem is built once).

    Solver specs may be the reference benchmark's (`reference_specs`): a spec's `random_state`
    gives its runs' seeds, and its `batch_size` goes on the problem of its runs."""
    translations = [t for solver in spec.solvers for t in translate(solver)]
    cells = []
    for problem in spec.problems:
        problem_name, problem_params = parse_spec(problem)
        for translation in translations:
            params = _problem_params(problem_name, problem_params, translation)
            for seed in _seeds(spec.seeds, translation):
                cells.append(Cell(problem_name, translation.solver, params, translation.params, seed))
    return cells


def spec_notes(spec: BenchmarkSpec) -> list[str]:
    """What the translation of the benchmark's reference specs ignored or set, one line each."""
    translations = [t for solver in spec.solvers for t in translate(solver)]
    notes = [note for t in translations for note in t.notes]
    for problem in spec.problems:
        problem_name, problem_params = parse_spec(problem)
        for t in translations:
            notes += [f"{t.label}: {key}={value} set on {problem_name} for its runs "
                      f"(a problem parameter here)" for key, value in t.problem_params.items()
                      if key not in problem_params]
    return list(dict.fromkeys(notes))


def _seeds(seeds: list[int], translation: Translation) -> list[int]:
    """The seeds of one solver spec's runs: its random_state, else the benchmark's. Seeds given to the
    benchmark (anything but the default [0]) must then be the same."""
    if translation.seeds is None:
        return list(seeds)
    if list(seeds) != DEFAULT_SEEDS and sorted(seeds) != sorted(translation.seeds):
        raise UserError(f"{translation.label}: random_state asks seeds {list(translation.seeds)} but the run has "
                        f"seeds {list(seeds)}; drop one of them")
    return list(translation.seeds)


def _problem_params(problem: str, params: dict[str, str], translation: Translation) -> dict[str, str]:
    """The problem's parameters for one solver spec's runs: those the spec asks (batch_size) are set
    when the problem spec does not give them, checked when it does."""
    if not translation.problem_params:
        return params
    fields = {f.name for f in dataclasses.fields(get_problem(problem).Params)}
    merged = dict(params)
    for key, value in translation.problem_params.items():
        if key not in fields:
            raise UserError(f"{translation.label}: {key} is a problem parameter here and {problem} has none; "
                            f"drop {key}={value} from the solver spec")
        if key in params and not same_value(str(params[key]), value):
            raise UserError(f"{translation.label}: {key}={value} but the problem has {problem}[{key}={params[key]}]; "
                            f"{key} is a problem parameter here: put it on the problem")
        merged.setdefault(key, value)
    return merged


def validate_cells(cells: list[Cell], config: RunConfig) -> None:
    """Raise UserError on the first bad name or parameter, before anything runs."""
    for cell in cells:
        cell_identity(cell, config)


def run_benchmark(cells: list[Cell], config: RunConfig, output_dir: str | Path,
                  console: Console | None = None,
                  on_result: Callable[[pd.DataFrame], None] | None = None,
                  executor: Executor | None = None, force: bool = False) -> pd.DataFrame:
    """Run every cell not already complete in `output_dir` (all of them with `force`) on
    `executor` (default: one after the other in this process); each run's file is written as
    soon as it ends. Returns the rows of every cell, reused ones included. Shows progress on
    `console`."""
    tables = run_cells(cells, config, output_dir, console, on_result, executor, force)
    unique = {str(table["run_id"].iloc[-1]): table for table in tables}  # the same cell twice is one run
    return pd.concat(unique.values(), ignore_index=True, sort=False) if unique else pd.DataFrame()


def run_cells(cells: list[Cell], config: RunConfig, output_dir: str | Path,
              console: Console | None = None,
              on_result: Callable[[pd.DataFrame], None] | None = None,
              executor: Executor | None = None, force: bool = False,
              description: str = "runs") -> list[pd.DataFrame]:
    """`run_benchmark`'s work, with each cell's rows returned in the order of `cells` (a cell
    listed twice runs once and is returned twice), for callers that need to know which rows
    belong to which cell (e.g. tuning). `description` names the runs on the progress bar."""
    validate_cells(cells, config)
    console = console or Console(stderr=True)
    executor = executor or InlineExecutor()
    identities = [cell_identity(cell, config) for cell in cells]
    run_ids = [run_id for _, run_id in identities]
    cell_of = dict(zip(run_ids, cells))
    id_of_cell = {tuple(identity[key] for key in CELL_KEYS): run_id for identity, run_id in identities}
    if Path(output_dir).is_dir():
        resume.remove_partial_files(output_dir)
    todo, tables = resume.split_complete(run_ids, output_dir, force=force)
    if tables:
        console.print(f"{len(tables)} of {len(cell_of)} {description} already complete in {output_dir}/, reused "
                      f"(--force reruns them); {len(todo)} to run", highlight=False)
    tasks = [Task(cell_of[run_id], config, str(output_dir), run_id) for run_id in todo]
    if tasks and executor.name != "inline":
        console.print(f"executor: {executor.describe()}", highlight=False)
    # A 20-character bar leaves the run's label whole in 80 columns.
    columns = (TextColumn("[bold]{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as progress:
        bar = progress.add_task(description, total=len(tasks))
        start = time.perf_counter()
        for index, table in enumerate(executor.run(tasks)):
            final = table.iloc[-1]
            run_id = str(final["run_id"])
            if run_id not in cell_of:  # its code changed while it ran (new code hash, new id): same cell
                run_id = id_of_cell[tuple(final[key] for key in CELL_KEYS)]
            tables[run_id] = table
            if on_result:
                on_result(table)
            label = f"{final['problem']} {final['solver']} seed={final['seed']}"
            progress.update(bar, description=label)
            if not console.is_terminal:  # plain progress lines for logs and CI
                for line in progress_lines(index + 1, len(tasks), label, final, time.perf_counter() - start,
                                           width=console.width):
                    console.print(line, highlight=False, markup=False, soft_wrap=True)
            progress.advance(bar)
    return [tables[run_id] for run_id in run_ids]


def progress_lines(done: int, total: int, label: str, final: pd.Series, elapsed: float, width: int = 80) -> list[str]:
    """The plain progress of a finished run for logs: `[3/40] quadratic soba seed=2: ok (max_steps) at 1.2s`,
    then, for a run that did not end ok, the first line of its message, indented and cut to WIDTH."""
    lines = [f"[{done}/{total}] {label}: {final['status']} ({final.get('stop_reason', '')}) at {elapsed:.1f}s"]
    if final["status"] != "ok":
        message = (str(final.get("message") or "").splitlines() or [""])[0]
        room = max(20, width - 4)
        lines.append("    " + (message if len(message) <= room else message[:room - 3] + "..."))
    return lines
