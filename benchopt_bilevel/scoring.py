"""Scores of a leaderboard: time-to-target, ratios to the best, performance profiles.

Pure functions of result tables (the long-format rows of `results.load_results`):

1. **Target.** Each problem documents a target: `target_metric` and `target_value` on its class
   (lower is better). A target can be overridden per problem (`targets={"quadratic": 1e-4}` or
   `{"quadratic": ("grad_norm2", 1e-6)}`).
2. **Time-to-target of a run** (`run_table`): the first `time` (synchronized seconds of steps)
   of an evaluation row whose `objective_<target_metric>` is ≤ the target; +∞ when the run never
   reaches it (diverged, error, skipped, or simply too slow: its status is kept beside it). The
   same on the oracle-call axis: `oracle_total` at that row (`oracle_to_target`). A run is
   `(run_id, device_name)`: the same cell measured on two machines is two runs.
3. **Median over seeds** (`summary`): per device class, problem and solver entry, the median and
   the 20%/80% quantiles of the runs' times-to-target (a quantile touching an infinite value is
   infinite), with the median final value of the target metric as a tie-break.
4. **Ratio to the best**: each entry's median divided by the best median on that problem and
   device class (+∞ for an entry that does not reach the target on most seeds).
5. **Performance profile** (Dolan & Moré, 2002): for a solver s, ρ_s(τ) = fraction of the
   problems on which its ratio r_{p,s} ≤ τ. A solver absent from a problem counts as failing it.
6. **Score** (as MLCommons AlgoPerf): B_s = 1/(τ_max − 1) ∫_1^τ_max ρ_s(τ) dτ with τ_max = 4 and
   **linear** τ. ρ_s is a step function, so the integral is exact:
   B_s = mean over problems of max(0, τ_max − r_{p,s}) / (τ_max − 1).
   1 means fastest on every problem; 0 means never within 4× of the best.

Only runs of the same **device class** (`device` + `device_name`, e.g. "cuda: NVIDIA H100 80GB
HBM3") are ever compared: every grouping below starts with `device_class`.

Entries. A problem instance is a problem with its parameters; it is labelled by the problem's
name, plus the parameters that vary when one table holds several instances of a problem
(`quadratic[dim_x=100]`). A solver entry is a solver with its parameters, dtype and
compilation. On a device class, a solver is labelled by its name alone when every problem has
at most one setting of it, so a solver tuned separately per problem is one entry across problems,
as the protocol wants (tuning is part of the method). When some problem has several settings of
a solver, each setting is labelled by the name plus the settings that vary among all of that
solver's settings on the device class (`soba[step_inner=0.01]`), the same label on every problem.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .errors import UserError
from .results import STATUSES

AXES = {"time": ("time", "time_to_target"), "oracle": ("oracle_total", "oracle_to_target")}
TAU_MAX = 4.0
QUANTILES = (0.2, 0.8)
GROUP = ["device_class", "problem_label", "solver_label"]
# The metric of benchopt's `objective_value` column (each problem's `value_metric`).
BENCHOPT_VALUE_METRIC = "value"


@dataclass(frozen=True)
class Target:
    """A documented target: the run has reached it when objective_<metric> <= value."""

    metric: str
    value: float

    @property
    def column(self) -> str:
        return f"objective_{self.metric}"

    def __str__(self) -> str:
        return f"{self.metric} ≤ {self.value:g}"


TargetOverrides = Mapping[str, "float | tuple[str, float] | Target"]


def problem_target(problem: str, overrides: TargetOverrides | None = None, strict: bool = True) -> Target:
    """The target of `problem`: from `overrides` if given there, else from its registered class.

    A problem that is not registered here or documents no target value is a UserError; with
    `strict=False` its target value is NaN instead (no run reaches it), as `show` wants. A problem
    not registered here is measured on benchopt's `objective_value` (its own `value_metric`).
    """
    overrides = overrides or {}
    if problem in overrides:
        given = overrides[problem]
        if isinstance(given, Target):
            return given
        if isinstance(given, tuple):
            return Target(str(given[0]), float(given[1]))
    from .registry import get_problem  # imported here: scoring stays usable on bare tables

    try:
        cls = get_problem(problem)
    except UserError:
        # Its metrics are unknown here; benchopt's `objective_value` is in every result table.
        if problem in overrides:
            return Target(BENCHOPT_VALUE_METRIC, float(overrides[problem]))
        if not strict:
            return Target(BENCHOPT_VALUE_METRIC, math.nan)
        raise UserError(f"no target for problem {problem!r}: it is not registered here; "
                        f"give one with --target {problem}=VALUE (or {problem}:METRIC=VALUE)") from None
    if problem in overrides:
        return Target(cls.target_metric, float(overrides[problem]))
    if cls.target_value is None or not math.isfinite(cls.target_value):
        if not strict:
            return Target(cls.target_metric, math.nan)
        raise UserError(f"problem {problem!r} documents no target value; give one with --target {problem}=VALUE")
    return Target(cls.target_metric, float(cls.target_value))


def parse_target(text: str) -> tuple[str, float | tuple[str, float]]:
    """'quadratic=1e-4' -> ('quadratic', 1e-4); 'quadratic:grad_norm2=1e-6' -> ('quadratic', ('grad_norm2', 1e-6))."""
    name, sep, value = text.partition("=")
    problem, colon, metric = name.partition(":")
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not sep or not problem.strip() or (colon and not metric.strip()) or not math.isfinite(number):
        raise UserError(f"cannot read target {text!r}: expected PROBLEM=VALUE or PROBLEM:METRIC=VALUE")
    return problem.strip(), ((metric.strip(), number) if colon else number)


def device_class(device: Any, device_name: Any) -> str:
    """'cpu: Intel(R) Xeon(R) ...' or 'cuda: NVIDIA H100 80GB HBM3': what may be compared."""
    return f"{device}: {device_name}"


def quantile(values: Any, q: float) -> float:
    """The q-quantile (linear interpolation) of `values`, infinite when it touches an infinity.

    NaNs are ignored; NaN for no value. np.quantile would give NaN between two infinities.
    """
    array = np.sort(np.asarray(values, dtype=float))
    array = array[~np.isnan(array)]
    if array.size == 0:
        return float("nan")
    position = q * (array.size - 1)
    low, high = int(math.floor(position)), int(math.ceil(position))
    fraction = position - low
    if fraction == 0.0:
        return float(array[low])
    if np.isinf(array[low]) or np.isinf(array[high]):
        return float(array[high]) if np.isinf(array[high]) else float(array[low])
    return float(array[low] + fraction * (array[high] - array[low]))


def median(values: Any) -> float:
    return quantile(values, 0.5)


def _interpolate(low_value: np.ndarray, high_value: np.ndarray, fraction: np.ndarray,
                 count: np.ndarray) -> np.ndarray:
    """The quantile rule shared by the vectorised quantiles: linear between the two order
    statistics around the position, the infinite one when either is infinite (np.quantile would
    give NaN between two infinities), NaN where a column or group has no value."""
    with np.errstate(invalid="ignore"):
        interpolated = low_value + fraction * (high_value - low_value)
    infinite = np.isinf(low_value) | np.isinf(high_value)
    between = np.where(np.isinf(high_value), high_value, low_value)
    result = np.where(fraction == 0.0, low_value, np.where(infinite, between, interpolated))
    return np.where(count == 0, np.nan, result)


def column_quantiles(matrix: Any, q: float) -> np.ndarray:
    """`quantile(column, q)` of every column of a 2-D array at once (same NaN and ∞ rules).

    The leaderboard takes quantiles over seeds at every grid point of every curve: one call
    per column was a third of rendering 1,000 runs.
    """
    array = np.sort(np.asarray(matrix, dtype=float), axis=0)  # NaNs sort last
    count = (~np.isnan(array)).sum(axis=0)
    position = q * (count - 1)
    low, high = np.floor(position).astype(int), np.ceil(position).astype(int)
    fraction = position - low
    columns = np.arange(array.shape[1])
    low_value, high_value = array[np.clip(low, 0, None), columns], array[np.clip(high, 0, None), columns]
    return _interpolate(low_value, high_value, fraction, count)


def group_quantiles(values: Any, codes: Any, q: float) -> np.ndarray:
    """`quantile(values[codes == g], q)` for every group g = 0 … codes.max() at once (same NaN and
    ∞ rules); `codes` sorted. The summary takes quantiles over seeds of ~1,000 entries: one call
    per entry and column was most of its time.
    """
    values, codes = np.asarray(values, dtype=float), np.asarray(codes)
    n_groups = int(codes.max()) + 1 if codes.size else 0
    missing = np.isnan(values)
    order = np.lexsort((np.where(missing, 0.0, values), missing, codes))  # by group, NaNs last
    array = values[order]
    start = np.searchsorted(codes[order], np.arange(n_groups), side="left")
    count = np.bincount(codes, weights=~missing, minlength=n_groups).astype(int)
    position = q * (count - 1)
    low, high = np.floor(position).astype(int), np.ceil(position).astype(int)
    fraction = position - low
    if array.size == 0:
        return np.full(n_groups, np.nan)
    low_value = array[np.clip(start + low, 0, array.size - 1)]
    high_value = array[np.clip(start + high, 0, array.size - 1)]
    return _interpolate(low_value, high_value, fraction, count)


# -- labels ------------------------------------------------------------------------------------
def _json_dict(text: Any) -> dict[str, Any]:
    if isinstance(text, dict):
        return text
    if not isinstance(text, str) or not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _varying_label(name: str, settings: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Label each setting (key -> dict) by `name` plus the keys whose values differ."""
    if len(settings) <= 1:
        return {key: name for key in settings}
    keys = sorted({k for d in settings.values() for k in d})
    varying = [k for k in keys if len({json.dumps(d.get(k), sort_keys=True, default=str)
                                       for d in settings.values()}) > 1]
    return {key: f"{name}[{','.join(f'{k}={_format_value(d.get(k))}' for k in varying)}]"
            for key, d in settings.items()}


def _with_defaults(results: pd.DataFrame) -> pd.DataFrame:
    table = results.copy()
    defaults = {"device": "cpu", "device_name": "unknown", "problem_params": "{}", "solver_params": "{}",
                "dtype": "", "compiled": False, "status": "ok", "stop_reason": "", "message": "",
                "seed": 0, "step": np.nan, "oracle_total": np.nan, "peak_memory_bytes": np.nan}
    for column, value in defaults.items():
        if column not in table:
            table[column] = value
    for column in ("problem_params", "solver_params"):
        table[column] = table[column].fillna("{}").astype(str)
    table["device_name"] = table["device_name"].fillna("unknown").astype(str)
    table["dtype"] = table["dtype"].fillna("").astype(str)
    table["compiled"] = table["compiled"].fillna(False).astype(bool)
    # How steps ran (eager, compiled or fast): tables older than the column, and rows whose run
    # never decided, read it from `compiled`.
    implied = np.where(table["compiled"], "compiled", "eager")
    table["path"] = table["path"].fillna(pd.Series(implied, index=table.index)) if "path" in table else implied
    table["path"] = table["path"].astype(str)
    if "dataset" not in table:
        table["dataset"] = table["problem"]
    if "run_id" not in table:
        raise UserError("result table has no run_id column: is it a benchopt_bilevel results table?")
    return table


def _group_codes(table: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(code of each row's combination of `columns`, position of each combination's first row)."""
    codes = table.groupby(columns, sort=False, dropna=False).ngroup().to_numpy()
    _, first = np.unique(codes, return_index=True)
    return codes, first


def label_rows(results: pd.DataFrame) -> pd.DataFrame:
    """A copy of result rows with `device_class`, `problem_label` and `solver_label` added.

    Labels are computed once per distinct combination (problem and parameters; solver, parameters,
    dtype and step path), not once per row: a leaderboard has ~25 rows per run. Rows of one solver
    that ran on different step paths (eager, compiled, fast) are different entries, labelled by
    their path, so they are never ranked as one.
    """
    table = _with_defaults(results)
    if table.empty:
        for column in GROUP:
            table[column] = pd.Series(dtype=str)
        return table
    table["device_class"] = table["device"].astype(str) + ": " + table["device_name"]
    problem_codes, first = _group_codes(table, ["problem", "problem_params"])
    instances = table.iloc[first][["problem", "problem_params"]]
    problem_labels: dict[tuple[str, str], str] = {}
    for problem, group in instances.groupby("problem", sort=True):
        settings = {p: _json_dict(p) for p in sorted(group["problem_params"].unique())}
        for params, label in _varying_label(str(problem), settings).items():
            problem_labels[(problem, params)] = label
    table["problem_label"] = np.array([problem_labels[key] for key in zip(instances["problem"],
                                                                          instances["problem_params"])],
                                      dtype=object)[problem_codes]
    setting_codes, first = _group_codes(table, ["solver_params", "dtype", "path"])
    distinct = table.iloc[first]
    table["_setting"] = np.array([json.dumps({**_json_dict(s), "dtype": d, "path": p}, sort_keys=True)
                                  for s, d, p in zip(distinct["solver_params"], distinct["dtype"],
                                                     distinct["path"])], dtype=object)[setting_codes]
    entry_codes, first = _group_codes(table, ["device_class", "solver", "problem_label", "_setting"])
    entries = table.iloc[first][["device_class", "solver", "problem_label", "_setting"]]
    solver_labels: dict[tuple[str, str, str], str] = {}
    for (device, solver), group in entries.groupby(["device_class", "solver"], sort=True):
        per_problem = group.groupby("problem_label")["_setting"].nunique().max()
        settings = {s: json.loads(s) for s in sorted(group["_setting"].unique())}
        if per_problem <= 1:  # one setting per problem (e.g. tuned per problem): one entry
            labels = {setting: str(solver) for setting in settings}
        else:
            labels = _varying_label(str(solver), settings)
        for setting, label in labels.items():
            solver_labels[(device, solver, setting)] = label
    table["solver_label"] = np.array([solver_labels[key] for key in zip(entries["device_class"], entries["solver"],
                                                                        entries["_setting"])],
                                     dtype=object)[entry_codes]
    return table.drop(columns="_setting")


# -- per run -----------------------------------------------------------------------------------
RUN_COLUMNS = ["device_class", "problem_label", "solver_label", "run_id", "problem", "dataset", "problem_params",
               "solver", "solver_params", "seed", "device", "device_name", "dtype", "compiled", "path",
               "status", "stop_reason", "message", "target_metric", "target_value", "reached", "time_to_target",
               "oracle_to_target", "final_metric", "final_time", "final_oracle_total", "final_step",
               "peak_memory_bytes"]


def run_table(results: pd.DataFrame, targets: TargetOverrides | None = None, strict: bool = True) -> pd.DataFrame:
    """One row per run: time and oracle calls to reach its problem's target (+∞ when never).

    The status of the run is kept beside its time: a run that reached the target and diverged
    afterwards keeps its time-to-target (the first time it was there) and its `diverged` status.
    `strict=False` accepts problems without a documented target (their runs never reach it).
    This is the one implementation of time-to-target: `show`, `tune`, `compare` and the site use it.
    """
    if results is None or results.empty:
        return pd.DataFrame(columns=RUN_COLUMNS)
    table = label_rows(results)
    # A run is (run_id, device_name): the same cell measured on two machines is two runs.
    table["_run"] = table["run_id"].astype(str) + "\x00" + table["device_name"]
    table = table.sort_values(["_run", "step", "time"], kind="stable")
    table["target_metric"] = ""
    table["target_value"] = np.nan
    table["_reached"] = False
    table["_metric"] = np.nan
    for problem in table["problem"].unique():
        target = problem_target(str(problem), targets, strict)
        rows = table["problem"] == problem
        table.loc[rows, "target_metric"] = target.metric
        table.loc[rows, "target_value"] = target.value
        if target.column in table:
            values = pd.to_numeric(table.loc[rows, target.column], errors="coerce").astype(float)
            table.loc[rows, "_metric"] = values
            table.loc[rows, "_reached"] = (values <= target.value).fillna(False).to_numpy()
    by_run = table.groupby("_run", sort=True)
    last = by_run.tail(1).set_index("_run")
    if "final" in table:  # the runner marks the last row; prefer it when present
        marked = table[table["final"].fillna(False).astype(bool)].groupby("_run").tail(1).set_index("_run")
        last = pd.concat([marked, last[~last.index.isin(marked.index)]])
    first_reached = table[table["_reached"]].groupby("_run").head(1).set_index("_run")
    runs = last[[c for c in RUN_COLUMNS if c in last.columns and c not in (
        "reached", "time_to_target", "oracle_to_target", "final_metric", "final_time",
        "final_oracle_total", "final_step", "peak_memory_bytes")]].copy()
    runs["reached"] = runs.index.isin(first_reached.index)
    runs["time_to_target"] = first_reached["time"].reindex(runs.index).astype(float).fillna(np.inf)
    runs["oracle_to_target"] = first_reached["oracle_total"].reindex(runs.index).astype(float).fillna(np.inf)
    runs["final_metric"] = last["_metric"].reindex(runs.index).astype(float)
    runs["final_time"] = pd.to_numeric(last["time"], errors="coerce").reindex(runs.index)
    runs["final_oracle_total"] = pd.to_numeric(last["oracle_total"], errors="coerce").reindex(runs.index)
    runs["final_step"] = pd.to_numeric(last["step"], errors="coerce").reindex(runs.index)
    memory = pd.to_numeric(table["peak_memory_bytes"], errors="coerce")
    # -1 marks a run whose memory is unknown (killed, failed before measuring): NaN, not a figure.
    runs["peak_memory_bytes"] = memory.where(memory >= 0).groupby(table["_run"]).max().reindex(runs.index)
    runs = runs.reset_index(drop=True)
    return runs[RUN_COLUMNS].sort_values(["device_class", "problem_label", "solver_label", "seed"],
                                         kind="stable").reset_index(drop=True)


# -- per entry (median over seeds) -------------------------------------------------------------
def summary(runs: pd.DataFrame, quantiles: tuple[float, float] = QUANTILES) -> pd.DataFrame:
    """One row per (device class, problem, solver entry): medians over seeds, ratios, rank.

    Columns: time_median / time_low / time_high (quantiles of time-to-target), time_ratio (to the
    best median of the problem on the device class), the same with `oracle_`, final_metric_median,
    n_runs, n_reached, n_<status> for each status, path (the step path its runs took: eager,
    compiled or fast), peak_memory_median, final_oracle_median,
    final_time_median, final_step_median, message (the first run's that has one: why it failed
    or was skipped), rank (by time median, then final metric; 1 is best), and solver_params when
    the entry has one. This is the one summary of a results table: `show`, `score`, `compare`
    and the site read it.
    """
    low, high = quantiles
    codes = runs.groupby(GROUP, sort=True).ngroup().to_numpy() if not runs.empty else np.empty(0, int)
    order = np.argsort(codes, kind="stable")  # by entry; runs keep their order within an entry
    order = order[codes[order] >= 0]  # (a run without a label belongs to no entry)
    runs, codes = runs.iloc[order], codes[order]
    if runs.empty:
        return pd.DataFrame.from_records([])  # as before: no columns
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    first = runs.iloc[starts].reset_index(drop=True)
    table = first[GROUP + ["problem", "solver", "device", "device_name", "target_metric", "target_value",
                           "problem_params"]].copy()
    one_setting = runs.groupby(codes, sort=True)["solver_params"].nunique().to_numpy() == 1
    table["solver_params"] = first["solver_params"].where(one_setting, "")
    table["seeds"] = [sorted(int(s) for s in seeds) for seeds in np.split(runs["seed"].to_numpy(), starts[1:])]
    table["path"] = [", ".join(sorted(set(paths))) for paths in np.split(runs["path"].astype(str).to_numpy(), starts[1:])]
    table["n_runs"] = np.diff(np.r_[starts, len(runs)])

    def count(mask: Any) -> np.ndarray:
        return np.bincount(codes, weights=np.asarray(mask, dtype=float), minlength=len(starts)).astype(int)

    table["n_reached"] = count(runs["reached"].to_numpy(dtype=bool))
    for status in STATUSES:
        table[f"n_{status}"] = count(runs["status"].to_numpy() == status)
    for axis, (_, column) in AXES.items():
        values = runs[column].to_numpy(dtype=float)
        table[f"{axis}_median"] = group_quantiles(values, codes, 0.5)
        table[f"{axis}_low"] = group_quantiles(values, codes, low)
        table[f"{axis}_high"] = group_quantiles(values, codes, high)
    for name, column in (("final_metric_median", "final_metric"), ("final_oracle_median", "final_oracle_total"),
                         ("final_time_median", "final_time"), ("final_step_median", "final_step")):
        table[name] = group_quantiles(runs[column].to_numpy(dtype=float), codes, 0.5)
    has_message = runs["message"].map(lambda m: isinstance(m, str) and bool(m)).to_numpy(dtype=bool)
    messages = runs["message"][has_message].groupby(codes[has_message], sort=True).first()
    table["message"] = messages.reindex(np.arange(len(starts))).fillna("").to_numpy(dtype=object)
    table["peak_memory_median"] = group_quantiles(runs["peak_memory_bytes"].to_numpy(dtype=float), codes, 0.5)
    for axis in AXES:
        best = table.groupby(["device_class", "problem_label"])[f"{axis}_median"].transform("min")
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = table[f"{axis}_median"] / best
        table[f"{axis}_ratio"] = ratio.where(np.isfinite(best), np.inf).fillna(np.inf)
    table["_final_key"] = table["final_metric_median"].fillna(np.inf)
    table = table.sort_values(["device_class", "problem_label", "time_median", "_final_key", "solver_label"],
                              kind="stable")
    table["rank"] = table.groupby(["device_class", "problem_label"]).cumcount() + 1
    return table.drop(columns="_final_key").reset_index(drop=True)


def mixed_paths(problem_entries: pd.DataFrame) -> dict[str, list[str]]:
    """{step path: its entries' labels} when one problem's ranking mixes step paths, else {}.

    An eager step pays PyTorch's per-op dispatch, a fast or compiled one does not: on an
    overhead-bound problem that alone can order entries, so every view of a ranking that mixes
    paths says so (the site's note and row badges, the README's table).
    """
    groups = problem_entries.groupby("path", sort=True)["solver_label"].agg(list)
    return {str(path): list(labels) for path, labels in groups.items()} if len(groups) > 1 else {}


# -- across problems -------------------------------------------------------------------------------
def ratio_matrix(entries: pd.DataFrame, device: str, axis: str = "time") -> pd.DataFrame:
    """Problems × solver entries of one device class: ratios to the best, +∞ where missing."""
    _check_axis(axis)
    rows = entries[entries["device_class"] == device]
    matrix = rows.pivot_table(index="problem_label", columns="solver_label", values=f"{axis}_ratio",
                              aggfunc="min")
    return matrix.fillna(np.inf).astype(float)


def performance_profiles(entries: pd.DataFrame, axis: str = "time",
                         taus: Any = None) -> pd.DataFrame:
    """ρ_s(τ) = fraction of the device class's problems with ratio ≤ τ; long format.

    Columns: device_class, solver_label, tau, rho. `taus` defaults to 200 points on [1, 4] plus
    every ratio in that interval (so the steps are exact).
    """
    _check_axis(axis)
    records = []
    for device in sorted(entries["device_class"].unique()) if not entries.empty else []:
        matrix = ratio_matrix(entries, device, axis)
        grid = np.asarray(taus, dtype=float) if taus is not None else np.unique(np.concatenate([
            np.linspace(1.0, TAU_MAX, 200), matrix.values[(matrix.values >= 1) & (matrix.values <= TAU_MAX)]]))
        for solver in matrix.columns:
            ratios = matrix[solver].to_numpy()
            for tau in grid:
                records.append({"device_class": device, "solver_label": solver, "tau": float(tau),
                                "rho": float(np.mean(ratios <= tau))})
    return pd.DataFrame.from_records(records, columns=["device_class", "solver_label", "tau", "rho"])


def profile_score(ratios: Any, tau_max: float = TAU_MAX) -> float:
    """(1/(τ_max − 1)) ∫_1^τ_max ρ(τ) dτ (linear τ), exact for the step function ρ of `ratios`."""
    ratios = np.asarray(ratios, dtype=float)
    if ratios.size == 0:
        return float("nan")
    within = np.where(ratios <= tau_max, tau_max - np.maximum(ratios, 1.0), 0.0)
    return float(np.mean(within) / (tau_max - 1.0))


def scores(entries: pd.DataFrame, axis: str = "time", tau_max: float = TAU_MAX) -> pd.DataFrame:
    """One score per solver entry and device class (AlgoPerf's profile integral, linear τ ∈ [1, 4]).

    Columns: device_class, solver_label, score, n_problems, n_solved (finite ratio), n_best
    (ratio 1), n_within (ratio ≤ τ_max). Sorted by device class, then best score first.
    """
    _check_axis(axis)
    records = []
    for device in sorted(entries["device_class"].unique()) if not entries.empty else []:
        matrix = ratio_matrix(entries, device, axis)
        for solver in matrix.columns:
            ratios = matrix[solver].to_numpy()
            records.append({"device_class": device, "solver_label": solver,
                            "score": profile_score(ratios, tau_max), "n_problems": int(ratios.size),
                            "n_solved": int(np.isfinite(ratios).sum()), "n_best": int((ratios <= 1.0).sum()),
                            "n_within": int((ratios <= tau_max).sum())})
    table = pd.DataFrame.from_records(records, columns=["device_class", "solver_label", "score", "n_problems",
                                                        "n_solved", "n_best", "n_within"])
    return table.sort_values(["device_class", "score", "solver_label"], ascending=[True, False, True],
                             kind="stable").reset_index(drop=True)


def score(results: pd.DataFrame, targets: TargetOverrides | None = None, axis: str = "time",
          tau_max: float = TAU_MAX) -> pd.DataFrame:
    """Result rows -> the score table (`run_table`, then `summary`, then `scores`)."""
    return scores(summary(run_table(results, targets)), axis=axis, tau_max=tau_max)


def _check_axis(axis: str) -> None:
    if axis not in AXES:
        raise UserError(f"unknown axis {axis!r}; choose one of {', '.join(AXES)}")
