"""The vectorised paths of the leaderboard (all runs' curves at once, quantiles of every column
at once) give exactly what the per-run and per-column definitions give."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchopt_bilevel.scoring import column_quantiles, quantile
from benchopt_bilevel.site import plots


@pytest.mark.parametrize("seed", range(20))
def test_column_quantiles_match_quantile(seed):
    generator = np.random.default_rng(seed)
    matrix = generator.normal(size=(int(generator.integers(1, 9)), 7))
    draw = generator.random(matrix.shape)
    matrix[draw < 0.2] = np.nan
    matrix[(draw >= 0.2) & (draw < 0.3)] = np.inf
    matrix[(draw >= 0.3) & (draw < 0.35)] = -np.inf
    for q in (0.2, 0.5, 0.8):
        expected = np.array([quantile(column, q) for column in matrix.T])
        np.testing.assert_allclose(column_quantiles(matrix, q), expected)


def _per_run(entry: pd.DataFrame, grid: np.ndarray) -> np.ndarray:
    """The definition: one run at a time through `_step_values`."""
    curves = []
    for _, run in entry.groupby("run_id", sort=True):
        run = run.dropna(subset=["time"]).sort_values("time", kind="stable")
        if run.empty:
            continue
        y = np.clip(run["metric"].to_numpy(dtype=float), plots.FLOOR, None)
        curves.append(plots._step_values(run["time"].to_numpy(dtype=float), y, grid,
                                         hold=run["status"].iloc[-1] == "ok"))
    return np.vstack(curves)


@pytest.mark.parametrize("seed", range(10))
def test_curves_match_step_values_per_run(seed):
    generator = np.random.default_rng(seed)
    frames = []
    for run in range(12):
        n = int(generator.integers(1, 30))
        time = np.sort(generator.uniform(0, 10, n))
        time[generator.random(n) < 0.1] = np.nan  # rows without a time are dropped
        if n > 3:
            time[2] = time[1]  # two evaluations at one time: the later row wins
        metric = np.exp(generator.normal(size=n))
        metric[generator.random(n) < 0.1] = np.nan
        status = "ok" if run % 3 else "diverged"
        frames.append(pd.DataFrame({"run_id": f"r{run:02d}", "time": time, "metric": metric, "status": status}))
    entry = pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=seed)  # any row order
    grid = np.geomspace(0.05, 10.0, 40)
    np.testing.assert_array_equal(plots._curves(entry, "time", "metric", grid),
                                  _per_run(entry, grid))


def test_log_labels_are_plain_text():
    assert plots._log_label(1e-3) == "10⁻³"
    assert plots._log_label(100.0) == "10²"
    assert plots._log_label(3e-3) == ""


# -- scoring: labels and the per-entry summary, against their per-entry definitions ------------------
def _label_rows_per_row(results: pd.DataFrame) -> pd.DataFrame:
    """The definition: labels computed row by row and entry by entry."""
    import json

    from benchopt_bilevel.scoring import GROUP, _json_dict, _varying_label, _with_defaults, device_class

    table = _with_defaults(results)
    if table.empty:
        for column in GROUP:
            table[column] = pd.Series(dtype=str)
        return table
    table["device_class"] = [device_class(d, n) for d, n in zip(table["device"], table["device_name"])]
    problem_labels = {}
    for problem, group in table.groupby("problem", sort=True):
        settings = {p: _json_dict(p) for p in sorted(group["problem_params"].unique())}
        for params, label in _varying_label(str(problem), settings).items():
            problem_labels[(problem, params)] = label
    table["problem_label"] = [problem_labels[(p, q)] for p, q in zip(table["problem"], table["problem_params"])]
    table["_setting"] = [json.dumps({**_json_dict(s), "dtype": d, "path": p}, sort_keys=True)
                         for s, d, p in zip(table["solver_params"], table["dtype"], table["path"])]
    solver_labels = {}
    for (device, solver), group in table.groupby(["device_class", "solver"], sort=True):
        per_problem = group.groupby("problem_label")["_setting"].nunique().max()
        settings = {s: json.loads(s) for s in sorted(group["_setting"].unique())}
        labels = ({setting: str(solver) for setting in settings} if per_problem <= 1
                  else _varying_label(str(solver), settings))
        for setting, label in labels.items():
            solver_labels[(device, solver, setting)] = label
    table["solver_label"] = [solver_labels[key] for key in zip(table["device_class"], table["solver"], table["_setting"])]
    return table.drop(columns="_setting")


def _summary_per_entry(runs: pd.DataFrame, quantiles=(0.2, 0.8)) -> pd.DataFrame:
    """The definition: one entry at a time through `quantile`."""
    from benchopt_bilevel.scoring import AXES, GROUP, STATUSES, median

    low, high = quantiles
    records = []
    for (device, problem, solver), group in runs.groupby(GROUP, sort=True):
        record = {"device_class": device, "problem_label": problem, "solver_label": solver,
                  "problem": group["problem"].iloc[0], "solver": group["solver"].iloc[0],
                  "device": group["device"].iloc[0], "device_name": group["device_name"].iloc[0],
                  "target_metric": group["target_metric"].iloc[0], "target_value": group["target_value"].iloc[0],
                  "problem_params": group["problem_params"].iloc[0],
                  "solver_params": group["solver_params"].iloc[0] if group["solver_params"].nunique() == 1 else "",
                  "seeds": sorted(int(s) for s in group["seed"]),
                  "path": ", ".join(sorted(set(group["path"].astype(str)))),
                  "n_runs": len(group), "n_reached": int(group["reached"].sum())}
        for status in STATUSES:
            record[f"n_{status}"] = int((group["status"] == status).sum())
        for axis, (_, column) in AXES.items():
            record[f"{axis}_median"] = median(group[column])
            record[f"{axis}_low"] = quantile(group[column], low)
            record[f"{axis}_high"] = quantile(group[column], high)
        record["final_metric_median"] = median(group["final_metric"])
        record["final_oracle_median"] = median(group["final_oracle_total"])
        record["final_time_median"] = median(group["final_time"])
        record["final_step_median"] = median(group["final_step"])
        record["message"] = next((m for m in group["message"] if isinstance(m, str) and m), "")
        record["peak_memory_median"] = median(group["peak_memory_bytes"])
        records.append(record)
    table = pd.DataFrame.from_records(records)
    if table.empty:
        return table
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


def _random_results(seed: int) -> pd.DataFrame:
    """Result rows with several problem instances, solver settings, dtypes, devices, NaNs and ∞."""
    import json

    generator = np.random.default_rng(seed)
    n = int(generator.integers(1, 400))
    pick = lambda options: [options[i] for i in generator.integers(0, len(options), n)]  # noqa: E731
    table = pd.DataFrame({
        "run_id": [f"r{i}" for i in generator.integers(0, max(1, n // 5), n)],
        "problem": pick(["quadratic", "logreg", "hyper"]),
        "problem_params": pick([json.dumps({"dim_x": d}) for d in (3, 4)] + ["{}", None, "not json"]),
        "solver": pick(["soba", "saba", "itd"]),
        "solver_params": pick([json.dumps({"step": s, "inner": i}) for s in (0.1, 0.01) for i in (1, 2)] + [None]),
        "dtype": pick(["float64", "float32", None]),
        "compiled": pick([True, False, None]),
        "path": pick(["eager", "fast", None]),
        "device": pick(["cpu", "cuda"]),
        "device_name": pick(["A", "B", None]),
        "seed": generator.integers(0, 5, n),
        "step": generator.integers(0, 50, n).astype(float),
        "time": generator.exponential(size=n),
        "objective_value": np.where(generator.random(n) < 0.1, np.nan, generator.exponential(size=n)),
        "oracle_total": generator.integers(0, 1000, n).astype(float),
        "status": pick(["ok", "ok", "diverged", "error", "timeout", "skipped"]),
        "message": pick(["", None, "boom", "slow"]),
        "peak_memory_bytes": pick([-1.0, np.nan, 1e6, 2e6]),
    })
    return table


@pytest.mark.parametrize("seed", range(25))
def test_label_rows_match_per_row_labels(seed):
    from benchopt_bilevel.scoring import label_rows

    results = _random_results(seed)
    pd.testing.assert_frame_equal(label_rows(results), _label_rows_per_row(results))


@pytest.mark.parametrize("seed", range(25))
def test_summary_matches_per_entry_summary(seed):
    from benchopt_bilevel.scoring import run_table, summary

    results = _random_results(seed)
    runs = run_table(results, targets={p: float(t) for p, t in zip(("quadratic", "logreg", "hyper"),
                                                                  np.random.default_rng(seed).exponential(size=3))},
                     strict=False)
    runs.loc[runs.index[::7], "time_to_target"] = -np.inf  # both infinities, to exercise the quantile rules
    pd.testing.assert_frame_equal(summary(runs), _summary_per_entry(runs))
    pd.testing.assert_frame_equal(summary(runs.iloc[:0]), _summary_per_entry(runs.iloc[:0]))


@pytest.mark.parametrize("seed", range(10))
def test_curves_of_all_entries_match_curves_per_entry(seed):
    """A plot takes every entry's curves in one pass: each entry's block is that entry's `_curves`."""
    generator = np.random.default_rng(seed)
    frames = []
    for run in range(30):
        n = int(generator.integers(1, 20))
        time = np.sort(generator.uniform(0, 10, n))
        time[generator.random(n) < 0.1] = np.nan
        status = np.array(["ok" if run % 3 else "diverged"] * n, dtype=object)
        status[generator.random(n) < 0.2] = None  # a last row without a status: the last known one counts
        frames.append(pd.DataFrame({"solver_label": f"s{run % 4}", "run_id": f"r{run:02d}", "time": time,
                                    "metric": np.exp(generator.normal(size=n)), "status": status}))
    rows = pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=seed)
    grid = np.geomspace(0.05, 10.0, 40)
    labels, stacks = plots._labelled_curves(rows, "time", "metric", grid, keys=["solver_label", "run_id"])
    for label, entry in rows.groupby("solver_label", sort=True):
        np.testing.assert_array_equal(stacks[labels == label], plots._curves(entry, "time", "metric", grid))
