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
