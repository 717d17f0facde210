"""The claims track: the papers' headline claims as experiments with a verdict.

A claim is one file in this package holding `CLAIM = Claim(...)`: an id, the paper, the
statement in one sentence, the experiment that tests it (a problem, solver specifications, seeds
and a budget, run by the ordinary runner, so its rows are ordinary result rows) and a predicate
over those rows that returns an `Evidence`: `holds`, `fails` or `inconclusive`, with the figures
behind it. Shared predicate pieces are in `predicates.py`; running and evaluating in `run.py`.

Every module of this package that defines `CLAIM` is registered (modules starting with `_` are
skipped), in the order of their file names.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

import pandas as pd

from ..errors import UserError

VERDICTS = ("holds", "fails", "inconclusive")


@dataclass(frozen=True)
class Experiment:
    """What a claim runs: PROBLEM × SOLVERS × SEEDS with one budget (a run configuration)."""

    problem: str  # a problem specification, e.g. "quadratic[dim_x=5]"
    solvers: tuple[str, ...]  # solver specifications, e.g. ("soba", "saba[step_inner=0.1]")
    seeds: tuple[int, ...] = (0, 1, 2)
    max_time: float = 10.0  # seconds of steps per run
    max_steps: int | None = None
    n_evals: int = 25
    dtype: str = "float32"
    stop_at_target: bool = False  # end a run at the problem's target (claims about reaching it)

    def __post_init__(self) -> None:
        if len(self.seeds) < 3:
            raise ValueError("a claim's experiment needs at least 3 seeds (a spread, not one run)")


@dataclass(frozen=True)
class Evidence:
    """A predicate's answer: the verdict, one line saying what was compared, and the figures
    (medians and spreads over seeds) behind it."""

    verdict: str
    summary: str
    figures: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


@dataclass(frozen=True)
class Claim:
    """A paper's claim and the experiment that checks it.

    `predicate(rows)` receives the result rows of the experiment's runs, with a `claim_solver`
    column holding the solver specification each run was listed under. `plot` names the columns
    of the claim's figure (x, y): the median of y over seeds against x, one line per solver
    specification; `log_y` draws y on a log scale.
    """

    id: str
    paper: str
    statement: str
    experiment: Experiment
    predicate: Callable[[pd.DataFrame], Evidence]
    scale: str  # the scale it was checked at, in words
    plot: tuple[str, str] = ("step", "objective_relative_suboptimality")
    log_y: bool = True
    notes: str = ""  # thresholds and their reasons, departures from the paper's setting


def spec(name: str, **params: Any) -> str:
    """A specification string: spec("soba", step_inner=0.1) -> 'soba[step_inner=0.1]'."""
    return name + ("[" + ",".join(f"{k}={v}" for k, v in params.items()) + "]" if params else "")


def claims() -> dict[str, Claim]:
    """Every registered claim, by id."""
    found: dict[str, Claim] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        claim = getattr(importlib.import_module(f"{__name__}.{info.name}"), "CLAIM", None)
        if isinstance(claim, Claim):
            if claim.id in found:
                raise RuntimeError(f"two claims have the id {claim.id!r}")
            found[claim.id] = claim
    return found


def select(ids: tuple[str, ...] | list[str] = ()) -> list[Claim]:
    """The claims named by IDS (all of them when empty); UserError on an unknown id."""
    table = claims()
    unknown = [i for i in ids if i not in table]
    if unknown:
        raise UserError(f"unknown claim {unknown[0]!r}; the claims are: {', '.join(table)}")
    return [table[i] for i in ids] if ids else list(table.values())


__all__ = ["VERDICTS", "Claim", "Evidence", "Experiment", "claims", "select", "spec"]
