"""Run claims' experiments through the ordinary runner and executors, then judge them.

Every run goes to one results directory as an ordinary run file, so a rerun reuses the runs
already complete (`benchmark.run_cells`) and the directory can be published like any other.
The verdicts go to DIR/claims.json (`CLAIMS_FILE`): one entry per claim with its statement, its
experiment, its verdict, the figures behind it and the curves of its plot.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from rich.console import Console

from ..benchmark import run_cells, validate_cells
from ..cells import Cell, RunConfig
from ..errors import UserError
from ..executors.base import Executor
from ..params import parse_spec
from . import Claim, Evidence
from .table import CLAIMS_FILE, clean, write_claims  # noqa: F401 - CLAIMS_FILE for callers



def cells_of(claim: Claim, step_path: str = "auto") -> tuple[list[Cell], list[str], RunConfig]:
    """The cells of a claim's experiment, the solver specification of each, and its run config.

    `step_path` "auto" (default): in an experiment with a time budget (no max_steps, e.g. "which
    method is lower at equal time"), a solver whose eager step is cheap runs on the fast path, one
    cached build per solver and problem (`fast.py`), so that time measures the method and not
    PyTorch's dispatch; an experiment with a step budget runs eager, since its verdict reads
    iterates, oracle counts or memory per step, which the fast path does not change, and a cold
    build (minutes) would cost more than its steps. "fast" and "eager" apply to every experiment."""
    e = claim.experiment
    problem, problem_params = parse_spec(e.problem)
    cells, specs = [], []
    for spec in e.solvers:
        solver, solver_params = parse_spec(spec)
        for seed in e.seeds:
            cells.append(Cell(problem, solver, problem_params, solver_params, seed))
            specs.append(spec)
    config = RunConfig(max_time=e.max_time, max_steps=e.max_steps, n_evals=e.n_evals, dtype=e.dtype,
                       stop_at_target=e.stop_at_target,
                       step_path="eager" if step_path == "auto" and e.max_steps is not None else step_path)
    return cells, specs, config


def judge(claim: Claim, rows: pd.DataFrame) -> Evidence:
    """The claim's predicate on its rows; a predicate that raises is inconclusive, with the error."""
    try:
        return claim.predicate(rows)
    except Exception as error:  # noqa: BLE001 - one broken predicate must not hide the other claims
        return Evidence("inconclusive", f"the predicate failed: {type(error).__name__}: {error}")


def curves(claim: Claim, rows: pd.DataFrame) -> dict[str, list[list[list[float | None]]]]:
    """The points of the claim's plot: per solver specification, each seed's [xs, ys]."""
    x, y = claim.plot
    found: dict[str, list] = {}
    if rows.empty or x not in rows or y not in rows:
        return found
    for spec, group in rows.groupby("claim_solver", sort=False):
        found[spec] = [[_clean_list(run[x]), _clean_list(run[y])]
                       for _, run in group.sort_values("step").groupby("seed", sort=True)]
    return found


def run_claim(claim: Claim, output_dir: str | Path, console: Console | None = None,
              executor: Executor | None = None, force: bool = False, step_path: str = "auto") -> dict[str, Any]:
    """Run (or reuse) one claim's runs in OUTPUT_DIR and judge it; returns its claims-table entry.
    A claim whose experiment cannot be built here (a solver or a parameter that does not exist
    yet) is inconclusive, with the reason, and runs nothing."""
    start = time.perf_counter()
    cells, specs, config = cells_of(claim, step_path)
    entry = _entry(claim)
    try:
        validate_cells(cells, config)
    except UserError as error:
        evidence = Evidence("inconclusive", f"cannot run the experiment here: {error}")
        return {**entry, **_verdict(evidence), "run_ids": [], "wall_time": 0.0, "curves": {}}
    tables = run_cells(cells, config, output_dir, console, executor=executor, force=force, description=claim.id)
    labelled = []
    for table, spec in zip(tables, specs):
        table = table.copy()
        table["claim_solver"] = spec
        labelled.append(table)
    rows = pd.concat(labelled, ignore_index=True, sort=False)
    evidence = judge(claim, rows)
    run_ids = [str(table["run_id"].iloc[-1]) for table in labelled]
    return {**entry, **_verdict(evidence), "run_ids": run_ids, "wall_time": time.perf_counter() - start,
            "curves": curves(claim, rows)}


def run_claims(claims: list[Claim], output_dir: str | Path, console: Console | None = None,
               executor: Executor | None = None, force: bool = False,
               on_claim: Callable[[dict[str, Any]], None] | None = None,
               step_path: str = "auto") -> list[dict[str, Any]]:
    """Run and judge each claim in turn; the claims table is rewritten in OUTPUT_DIR after each
    one (entries of claims not run this time are kept). Returns this time's entries."""
    entries = []
    for claim in claims:
        entry = run_claim(claim, output_dir, console, executor, force, step_path)
        entries.append(entry)
        write_claims(output_dir, entries)
        if on_claim:
            on_claim(entry)
    return entries


def line(entry: dict[str, Any]) -> str:
    """One line for the terminal: the verdict, the id and the evidence."""
    return f"{entry['verdict'].upper():<12} {entry['id']}: {entry['summary']}"


def _entry(claim: Claim) -> dict[str, Any]:
    e = claim.experiment
    return {"id": claim.id, "paper": claim.paper, "statement": claim.statement, "scale": claim.scale,
            "notes": claim.notes,
            "experiment": {"problem": e.problem, "solvers": list(e.solvers), "seeds": list(e.seeds),
                           "max_time": e.max_time, "max_steps": e.max_steps, "n_evals": e.n_evals, "dtype": e.dtype,
                           "stop_at_target": e.stop_at_target},
            "plot": {"x": claim.plot[0], "y": claim.plot[1], "log_y": claim.log_y}}


def _verdict(evidence: Evidence) -> dict[str, Any]:
    return {"verdict": evidence.verdict, "summary": evidence.summary, "figures": evidence.figures}


def _clean_list(values: pd.Series) -> list[float | None]:
    return [clean(float(v)) for v in np.asarray(values, dtype=float)]
