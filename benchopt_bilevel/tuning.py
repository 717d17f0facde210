"""The tuning protocol: the same quasi-random budget for every solver, selection on tuning seeds,
evaluation on fresh seeds, one labelled and versioned YAML artefact.

For one problem instance and each solver:

1. **Trials.** `n_trials` points of a Halton sequence (bases 2, 3, 5, 7, ... one per dimension,
   points 1..n_trials, optionally shifted by a seeded uniform rotation) mapped through the
   solver's `search_space` (`LogUniform`, `IntRange`, `Choice`). Real values are rounded to 4
   significant digits, so what runs is exactly what the artefact says. Every solver gets the
   same number of trials; trials that map to the same parameters (integer or choice dimensions,
   an empty space) run once and are counted once in `n_distinct`. Parameters fixed in the solver
   spec (`soba[decay_inner=0.5]`) are kept and removed from the search.
2. **Tuning runs.** Each trial runs on every tuning seed, each run a task of the benchmark's
   executors (`run_cells`: the runner's clock, schedule and stop rules; isolation, timeout and
   resume); `stop_at_target` is on by default, since a run that reached the target has its
   time-to-target and needs no more steps.
3. **Selection.** The trial with the smallest median time-to-target over the tuning seeds; ties
   (e.g. no trial reaches the target) are broken by the median final value of the target metric,
   then by trial index.
4. **Fresh evaluation.** The selection runs again on fresh seeds (disjoint from the tuning seeds),
   under the artefact's own run configuration; these are the runs that go on the leaderboard.

The artefact (`ARTEFACT_VERSION`) is a valid run configuration for `run --config FILE`: one problem
spec, the selected solver specs, the fresh seeds and the run options replay the fresh evaluation.
Everything about the tuning lives under the `tuning:` key:

    problems: ["quadratic[n_inner=64,...]"]
    solvers: ["soba[step_inner=0.0316,outer_ratio=1.778]", "aid-cg[step_inner=...]"]
    seeds: [100, 101, 102]
    max_time: 5.0
    n_evals: 25
    device: cpu
    dtype: float32
    compile: false
    tuning:
      label: quadratic-small            # what the artefact is, for people
      version: 1                        # the artefact format
      created: 2025-01-01T00:00:00+00:00
      problem: quadratic[...]           # the one problem instance tuned
      target: {metric: relative_suboptimality, value: 0.001}
      sampler: {name: halton, shift_seed: null}
      budget: {trials: 8, tuning_seeds: 2, runs_per_solver: 16, max_time: 5.0}
      tuning_seeds: [0, 1]
      fresh_seeds: [100, 101, 102]
      selection: median time-to-target on the tuning seeds, then median final metric
      provenance: {package_version, git_revision, torch_version, device_name}
      solvers:
        soba:
          spec: soba[step_inner=0.0316,outer_ratio=1.778]
          search_space: {step_inner: {type: log_uniform, low: 0.001, high: 1.0}, ...}
          fixed: {}                     # parameters fixed by the solver spec
          n_trials: 8
          n_distinct: 8
          selected: {step_inner: 0.0316, outer_ratio: 1.778}
          selected_trial: 3
          tuning_score: {time_to_target_median: ..., final_metric_median: ..., n_reached: 2, n_runs: 2}
          fresh_score: {time_to_target_median: ..., time_to_target_low: ..., time_to_target_high: ...,
                        oracle_to_target_median: ..., final_metric_median: ..., n_reached: 3, n_runs: 3}
          trials: [{trial: 0, params: {...}, time_to_target_median: ..., final_metric_median: ...,
                    n_reached: ...}, ...]

One problem per artefact: a run configuration crosses every problem with every solver, and the
selected parameters belong to the problem they were tuned on. Tune several problems into several
artefacts (one file each) and list them all with `publish --tuning`.
"""
from __future__ import annotations

import dataclasses
import datetime
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from rich.console import Console

from . import __version__
from .benchmark import run_cells
from .errors import UserError
from .executors.base import Executor
from .params import build_params, params_to_dict, parse_spec
from .provenance import git_revision
from .atomic import atomic_write
from .registry import get_problem, get_solver
from .runner import Cell, RunConfig
from .scoring import median, problem_target, quantile, run_table
from .solver import Choice, IntRange, LogUniform

ARTEFACT_VERSION = 1
RUN_KEYS = ("max_time", "max_steps", "n_evals", "device", "dtype", "compile")
SELECTION_RULE = "median time-to-target on the tuning seeds, then median final metric, then trial index"


# -- quasi-random trials -----------------------------------------------------------------------
def _primes(count: int) -> list[int]:
    primes: list[int] = []
    candidate = 2
    while len(primes) < count:
        if all(candidate % p for p in primes if p * p <= candidate):
            primes.append(candidate)
        candidate += 1
    return primes


def _radical_inverse(index: int, base: int) -> float:
    result, scale = 0.0, 1.0 / base
    while index > 0:
        index, digit = divmod(index, base)
        result += digit * scale
        scale /= base
    return result


def halton(n_points: int, dimension: int, shift_seed: int | None = None) -> np.ndarray:
    """Points 1..n_points of the Halton sequence in [0, 1)^dimension (point 0 is the origin).

    With `shift_seed`, every point is rotated by one uniform shift modulo 1 (Cranley-Patterson):
    still low-discrepancy, different draws for different seeds.
    """
    bases = _primes(dimension)
    points = np.array([[_radical_inverse(i, b) for b in bases] for i in range(1, n_points + 1)], dtype=float)
    points = points.reshape(n_points, dimension)
    if shift_seed is not None:
        shift = np.random.default_rng(shift_seed).random(dimension)
        points = (points + shift) % 1.0
    return points


def _round(value: float) -> float:
    return float(f"{value:.4g}")


def sample_trials(search_space: dict[str, Any], n_trials: int, shift_seed: int | None = None) -> list[dict[str, Any]]:
    """`n_trials` parameter dicts from a Halton sequence over `search_space` (sorted dimension names)."""
    if n_trials < 1:
        raise UserError(f"n_trials must be at least 1, got {n_trials}")
    names = sorted(search_space)
    if not names:
        return [{} for _ in range(n_trials)]
    trials = []
    for point in halton(n_trials, len(names), shift_seed):
        trial: dict[str, Any] = {}
        for name, u in zip(names, point):
            value = search_space[name].sample(float(u))
            trial[name] = _round(value) if isinstance(value, float) else value
        trials.append(trial)
    return trials


def describe_space(search_space: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A search space as plain YAML-able data."""
    described: dict[str, dict[str, Any]] = {}
    for name in sorted(search_space):
        dim = search_space[name]
        if isinstance(dim, LogUniform):
            described[name] = {"type": "log_uniform", "low": float(dim.low), "high": float(dim.high)}
        elif isinstance(dim, IntRange):
            described[name] = {"type": "int_range", "low": int(dim.low), "high": int(dim.high)}
        elif isinstance(dim, Choice):
            described[name] = {"type": "choice", "values": [_plain(v) for v in dim.values]}
        else:
            described[name] = {"type": type(dim).__name__, "repr": repr(dim)}
    return described


# -- specs ---------------------------------------------------------------------------------------
def _format_spec_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def format_spec(name: str, params: dict[str, Any]) -> str:
    """('soba', {'step_inner': 0.05}) -> 'soba[step_inner=0.05]' (parse_spec's inverse)."""
    if not params:
        return name
    for key, value in params.items():
        if any(ch in _format_spec_value(value) for ch in ",[]="):
            raise UserError(f"parameter {key}={value!r} cannot be written in a spec (contains , [ ] or =)")
    return f"{name}[{','.join(f'{k}={_format_spec_value(v)}' for k, v in params.items())}]"


def _plain(value: Any) -> Any:
    """numpy scalars and tuples -> YAML-safe Python values."""
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str) and type(value) is not str:
        return str(value)
    return value


# -- the protocol ----------------------------------------------------------------------------------
@dataclass
class TuningPlan:
    """What `tune` does: one problem instance, solvers, the budget and the seeds."""

    problem: str  # a spec: name[key=value,...]
    solvers: list[str]  # specs; given parameters are fixed, the rest of the search space is tuned
    n_trials: int = 8
    tuning_seeds: list[int] = dataclasses.field(default_factory=lambda: [0, 1])
    fresh_seeds: list[int] = dataclasses.field(default_factory=lambda: [100, 101, 102])
    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    stop_at_target_when_tuning: bool = True
    label: str = ""
    shift_seed: int | None = None
    target: float | None = None  # overrides the problem's target value

    def check(self) -> None:
        """Raise UserError on anything wrong, before any run."""
        if self.n_trials < 1:
            raise UserError(f"n_trials must be at least 1, got {self.n_trials}")
        if not self.solvers:
            raise UserError("no solver to tune")
        if not self.tuning_seeds or not self.fresh_seeds:
            raise UserError("need at least one tuning seed and one fresh seed")
        overlap = sorted(set(self.tuning_seeds) & set(self.fresh_seeds))
        if overlap:
            raise UserError(f"fresh seeds must differ from tuning seeds; both contain {overlap}")
        problem_name, problem_params = parse_spec(self.problem)
        problem_cls = get_problem(problem_name)
        build_params(problem_cls.Params, problem_params, f"problem {problem_name!r}")
        if self.target is None:
            problem_target(problem_name)
        names = [parse_spec(s)[0] for s in self.solvers]
        if len(set(names)) != len(names):
            raise UserError("each solver can be tuned once per artefact; a solver is listed twice")
        for spec in self.solvers:
            name, fixed = parse_spec(spec)
            build_params(get_solver(name).Params, fixed, f"solver {name!r}")


def _score(runs: pd.DataFrame) -> dict[str, Any]:
    return {"time_to_target_median": median(runs["time_to_target"]),
            "time_to_target_low": quantile(runs["time_to_target"], 0.2),
            "time_to_target_high": quantile(runs["time_to_target"], 0.8),
            "oracle_to_target_median": median(runs["oracle_to_target"]),
            "final_metric_median": median(runs["final_metric"]),
            "n_reached": int(runs["reached"].sum()), "n_runs": int(len(runs)),
            "statuses": {str(k): int(v) for k, v in runs["status"].value_counts().sort_index().items()}}


def select_trial(trial_scores: list[dict[str, Any]]) -> int:
    """Index of the selected trial: smallest median time-to-target, then final metric, then index.

    A NaN final metric (no evaluation) ranks last among equal times.
    """
    if not trial_scores:
        raise UserError("no trial to select from")

    def key(index: int) -> tuple[float, float, int]:
        score = trial_scores[index]
        final = float(score["final_metric_median"])
        return (float(score["time_to_target_median"]), final if not math.isnan(final) else math.inf, index)

    return min(range(len(trial_scores)), key=key)


def step_paths(tables: list[pd.DataFrame]) -> dict[str, int]:
    """How a solver's runs stepped: fast runs that built their library ("built") or reused one
    from the build cache ("reused"), and the others ("eager", "compiled"). With the fast path,
    a solver's trials and seeds on one problem should show one build and the rest reused."""
    counts = {"built": 0, "reused": 0, "eager": 0, "compiled": 0}
    for table in tables:
        if table is None or table.empty:
            continue
        last = table.iloc[-1]
        path = last.get("path", "compiled" if bool(last.get("compiled", False)) else "eager")
        if path == "fast":
            hit = last.get("build_cache_hit")
            counts["reused" if hit is not None and not pd.isna(hit) and bool(hit) else "built"] += 1
        else:
            counts[path if path in counts else "eager"] += 1
    return counts


def _by_solver(tables: list[pd.DataFrame]) -> dict[str, list[pd.DataFrame]]:
    found: dict[str, list[pd.DataFrame]] = {}
    for table in tables:
        if table is not None and not table.empty:
            found.setdefault(str(table["solver"].iloc[0]), []).append(table)
    return found


def tune(plan: TuningPlan, output_dir: str | os.PathLike, executor: Executor | None = None,
         console: Console | None = None, force: bool = False) -> dict[str, Any]:
    """Run the protocol; returns the artefact (a dict, see the module docstring).

    Every run is a task of `executor` (default: inline, in this process), as in `run_benchmark`:
    tuning runs go to OUTPUT_DIR/trials (never mixed into the leaderboard: `load_results` reads
    only the top level), fresh-seed runs to OUTPUT_DIR (they are leaderboard results). Runs
    already complete there are reused (all rerun with `force`), so the same call resumes an
    interrupted tuning and selects the same trials.
    """
    plan.check()
    output_dir = Path(output_dir)
    problem_name, problem_params = parse_spec(plan.problem)
    overrides = {problem_name: plan.target} if plan.target is not None else None
    target = problem_target(problem_name, overrides)
    run_config = dataclasses.replace(plan.run, target=plan.target if plan.target is not None else plan.run.target)
    tuning_config = dataclasses.replace(run_config, stop_at_target=plan.stop_at_target_when_tuning or run_config.stop_at_target)

    solver_plans = []
    for spec in plan.solvers:
        name, fixed = parse_spec(spec)
        cls = get_solver(name)
        fixed_typed = params_to_dict(build_params(cls.Params, fixed, f"solver {name!r}"))
        fixed_typed = {k: fixed_typed[k] for k in fixed}
        space = {k: v for k, v in cls.search_space.items() if k not in fixed}
        trials = sample_trials(space, plan.n_trials, plan.shift_seed)
        distinct: list[dict[str, Any]] = []
        for trial in trials:
            if trial not in distinct:
                distinct.append(trial)
        solver_plans.append((name, fixed_typed, space, trials, distinct))

    def cell(name: str, params: dict[str, Any], seed: int) -> Cell:
        return Cell(problem_name, name, problem_params, params, seed)

    def score(tables: list[pd.DataFrame]) -> dict[str, Any]:
        return _score(run_table(pd.concat(tables, ignore_index=True, sort=False), overrides))

    # Tuning runs: every distinct trial of every solver on every tuning seed, in one batch.
    trial_cells = [cell(name, {**fixed, **trial}, seed) for name, fixed, _, _, distinct in solver_plans
                   for trial in distinct for seed in plan.tuning_seeds]
    trial_tables_all = list(run_cells(trial_cells, tuning_config, output_dir / "trials", console, executor=executor,
                                      force=force, description="tuning runs"))
    trial_tables = iter(trial_tables_all)
    trial_reports: dict[str, list[dict[str, Any]]] = {}
    best: dict[str, int] = {}
    for name, fixed, _, _, distinct in solver_plans:
        trial_reports[name] = []
        for index, trial in enumerate(distinct):
            trial_score = score([next(trial_tables) for _ in plan.tuning_seeds])
            trial_reports[name].append({"trial": index, "params": _plain(trial), **{
                k: trial_score[k] for k in ("time_to_target_median", "final_metric_median", "n_reached", "n_runs")}})
        best[name] = select_trial(trial_reports[name])
    selected = {name: {**fixed, **distinct[best[name]]} for name, fixed, _, _, distinct in solver_plans}

    # Fresh evaluation: each selection on every fresh seed, under the artefact's run configuration.
    fresh_cells = [cell(name, selected[name], seed) for name, *_ in solver_plans for seed in plan.fresh_seeds]
    fresh_tables = iter(run_cells(fresh_cells, run_config, output_dir, console, executor=executor, force=force,
                                  description="fresh runs"))

    trial_tables_by_solver = _by_solver(trial_tables_all)
    solver_reports: dict[str, Any] = {}
    for name, fixed, space, _, distinct in solver_plans:
        fresh_of_solver = [next(fresh_tables) for _ in plan.fresh_seeds]
        fresh = score(fresh_of_solver)
        tuned_score = trial_reports[name][best[name]]
        solver_reports[name] = {
            "spec": format_spec(name, _plain(selected[name])),
            "search_space": describe_space(space),
            "fixed": _plain(fixed),
            "n_trials": plan.n_trials,
            "n_distinct": len(distinct),
            "selected": _plain(distinct[best[name]]),
            "selected_trial": best[name],
            "tuning_score": {k: tuned_score[k] for k in ("time_to_target_median", "final_metric_median",
                                                         "n_reached", "n_runs")},
            "fresh_score": fresh,
            "trials": trial_reports[name],
            "steps": step_paths(trial_tables_by_solver.get(name, []) + fresh_of_solver),
        }

    from .provenance import device_name
    from .runner import resolve_device

    run_keys = {"max_time": run_config.max_time, "max_steps": run_config.max_steps, "n_evals": run_config.n_evals,
                "device": run_config.device, "dtype": run_config.dtype, "compile": run_config.compile}
    defaults = RunConfig()
    extra = {f.name: getattr(run_config, f.name) for f in dataclasses.fields(RunConfig)
             if f.name not in run_keys and getattr(run_config, f.name) != getattr(defaults, f.name)}
    artefact: dict[str, Any] = {
        "problems": [plan.problem.strip()],
        "solvers": [solver_reports[name]["spec"] for name, *_ in solver_plans],
        "seeds": list(plan.fresh_seeds),
        **{k: v for k, v in run_keys.items() if v is not None},
        **extra,
        "tuning": {
            "label": plan.label or f"{problem_name}-tuned",
            "version": ARTEFACT_VERSION,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "problem": plan.problem.strip(),
            "problem_name": problem_name,
            "problem_params": _plain(params_to_dict(build_params(get_problem(problem_name).Params, problem_params,
                                                                 f"problem {problem_name!r}"))),
            "target": {"metric": target.metric, "value": target.value},
            "sampler": {"name": "halton", "shift_seed": plan.shift_seed, "rounding": "4 significant digits"},
            "budget": {"trials": plan.n_trials, "tuning_seeds": len(plan.tuning_seeds),
                       "runs_per_solver": plan.n_trials * len(plan.tuning_seeds),
                       "max_time": run_config.max_time, "max_steps": run_config.max_steps,
                       "stop_at_target": tuning_config.stop_at_target},
            "tuning_seeds": list(plan.tuning_seeds),
            "fresh_seeds": list(plan.fresh_seeds),
            "selection": SELECTION_RULE,
            "provenance": {"package_version": __version__, "git_revision": git_revision(),
                           "torch_version": _torch_version(),
                           "device_name": device_name(resolve_device(run_config.device))},
            "solvers": solver_reports,
        },
    }
    return _plain(artefact)


def _torch_version() -> str:
    import torch

    return str(torch.__version__)


# -- the artefact as a file ------------------------------------------------------------------------
def write_artefact(artefact: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write the artefact as YAML, atomically (a comment header names what it is)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tuning = artefact.get("tuning", {})
    header = (f"# benchopt-bilevel tuning artefact {tuning.get('label', '')!s} (format version "
              f"{tuning.get('version', ARTEFACT_VERSION)}).\n"
              f"# Replay the fresh-seed evaluation with: benchopt-bilevel run --config {path.name}\n")
    text = header + yaml.safe_dump(artefact, sort_keys=False, allow_unicode=True, width=120)
    atomic_write(path, text.encode("utf-8"))
    return path


def read_artefact(path: str | os.PathLike) -> dict[str, Any]:
    """Read a tuning artefact; UserError when the file is not one."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"tuning artefact not found: {path}") from None
    except (OSError, yaml.YAMLError) as error:
        raise UserError(f"cannot read tuning artefact {path}: {type(error).__name__}") from None
    if not isinstance(data, dict) or not isinstance(data.get("tuning"), dict) or "solvers" not in data["tuning"]:
        raise UserError(f"{path} is not a tuning artefact (no tuning: section with solvers)")
    version = data["tuning"].get("version")
    if version != ARTEFACT_VERSION:
        raise UserError(f"{path}: tuning artefact version {version!r} is not supported (expected {ARTEFACT_VERSION})")
    return data


def find_artefacts(directory: str | os.PathLike) -> list[Path]:
    """The tuning artefacts (*.yaml / *.yml with a tuning: section) at the top of DIRECTORY."""
    found = []
    for path in sorted([*Path(directory).glob("*.yaml"), *Path(directory).glob("*.yml")]):
        try:
            read_artefact(path)
        except UserError:
            continue
        found.append(path)
    return found
