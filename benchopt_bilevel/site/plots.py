"""Plots of the leaderboard as inline SVG strings (matplotlib, Agg backend, text kept as text)."""
from __future__ import annotations

import io
import re
from typing import Iterable

import numpy as np
import pandas as pd

from ..scoring import TAU_MAX, column_quantiles

AXIS_LABELS = {"time": "time (s, synchronized, steps only)", "oracle": "oracle calls (full batch = n batches)"}
AXIS_COLUMNS = {"time": "time", "oracle": "oracle_total"}
GRID_POINTS = 120
FLOOR = 1e-16  # a metric of exactly 0 is drawn at this floor on a log scale


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "benchopt-bilevel",
                                "font.size": 9, "axes.spines.top": False, "axes.spines.right": False})
    import matplotlib.pyplot as plt

    return plt


def colors_for(labels: Iterable[str]) -> dict[str, str]:
    """A fixed colour per solver entry (same colour in every plot of the page)."""
    plt = _pyplot()
    palette = list(plt.get_cmap("tab10").colors) + list(plt.get_cmap("Dark2").colors)
    from matplotlib.colors import to_hex

    return {label: to_hex(palette[i % len(palette)]) for i, label in enumerate(sorted(set(labels)))}


def to_svg(figure) -> str:
    """The figure as an <svg> element (no XML prolog, no fixed size: it scales with the page)."""
    plt = _pyplot()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r'(<svg[^>]*?)\s(width|height)="[^"]*"', r"\1", text, count=1)
    text = re.sub(r'(<svg[^>]*?)\s(width|height)="[^"]*"', r"\1", text, count=1)
    # Path coordinates to 0.01 pt (matplotlib writes 6 decimals): a third of the page's size at
    # 10,000 runs, invisible on screen. Only inside path data, never in text.
    return re.sub(r' d="[^"]*"', lambda path: _DECIMALS.sub(r"\1", path.group()), text)


_DECIMALS = re.compile(r"(\.\d\d)\d+")


def _step_values(x: np.ndarray, y: np.ndarray, grid: np.ndarray, hold: bool) -> np.ndarray:
    """The run's metric at each grid point: the last evaluation at or before it.

    NaN before the first evaluation; after the last one, the final value is held when `hold`
    (the run ended normally) and NaN otherwise (diverged, error).
    """
    index = np.searchsorted(x, grid, side="right") - 1
    values = np.where(index >= 0, y[np.clip(index, 0, None)], np.nan)
    if not hold:
        values = np.where(grid > x[-1], np.nan, values)
    return values


def _curves(entry: pd.DataFrame, x_column: str, metric_column: str, grid: np.ndarray) -> np.ndarray:
    """Runs × grid: each run's metric at each grid point (`_step_values` of every run at once)."""
    return _labelled_curves(entry, x_column, metric_column, grid, keys=["run_id"])[1]


def _labelled_curves(rows: pd.DataFrame, x_column: str, metric_column: str, grid: np.ndarray,
                     keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(each run's `keys[0]`, runs × grid of each run's metric at each grid point), runs sorted by `keys`.

    A run is a distinct value of `keys`. A row at x sets the grid points from the first one ≥ x on,
    until the run's next row; a run that did not end `ok` is NaN past its last row. One pass over
    the rows of a whole plot, no loop over runs or entries (loops took most of publishing 10,000 runs).
    """
    rows = rows.dropna(subset=[x_column]).sort_values([*keys, x_column], kind="stable")
    if rows.empty:
        return np.empty(0, dtype=object), np.empty((0, grid.size))
    run_codes = rows.groupby(keys, sort=True).ngroup().to_numpy()  # nondecreasing: rows are sorted by keys
    ends = np.r_[np.flatnonzero(run_codes[1:] != run_codes[:-1]), run_codes.size - 1]
    n_runs = ends.size
    x = rows[x_column].to_numpy(dtype=float)
    y = np.clip(rows[metric_column].to_numpy(dtype=float), FLOOR, None)
    first_point = np.searchsorted(grid, x, side="left")
    inside = first_point < grid.size
    stack = np.full((n_runs, grid.size), np.nan)
    set_at = np.zeros((n_runs, grid.size), dtype=bool)
    # The last row of a run at each grid point wins: within a run rows are sorted by x, so the rows
    # landing on one grid point are adjacent.
    run, point = run_codes[inside], first_point[inside]
    last = np.r_[(run[1:] != run[:-1]) | (point[1:] != point[:-1]), True] if run.size else np.empty(0, bool)
    stack[run[last], point[last]] = y[inside][last]
    set_at[run[last], point[last]] = True
    # Forward fill along the grid: the index of the last set point at or before each one.
    index = np.where(set_at, np.arange(grid.size), -1)
    np.maximum.accumulate(index, axis=1, out=index)
    filled = np.where(index >= 0, np.take_along_axis(stack, np.clip(index, 0, None), axis=1), np.nan)
    # A run's last x is its last row's (rows sorted by x); its status the last one recorded.
    status = rows["status"]
    known = status.notna().to_numpy()
    known_codes = run_codes[known]
    last_known = np.r_[known_codes[1:] != known_codes[:-1], True] if known_codes.size else np.empty(0, bool)
    held = np.zeros(n_runs, dtype=bool)
    held[known_codes[last_known]] = status.to_numpy()[known][last_known] == "ok"
    past_end = grid[None, :] > x[ends][:, None]
    return rows[keys[0]].to_numpy()[ends], np.where(~held[:, None] & past_end, np.nan, filled)


def _log_label(value: float, _position: float = 0.0) -> str:
    """10⁻³ in plain text: matplotlib's mathtext labels cost most of the page's rendering time."""
    if value <= 0 or not np.isfinite(value):
        return ""
    exponent = np.log10(value)
    if not np.isclose(exponent, round(exponent)):
        return ""
    digits = str(int(round(exponent))).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return f"10{digits}"


def _plain_log_axes(ax) -> None:
    """Plain-text major labels, no minor ticks: minor ticks of log axes over many decades were a third
    of the drawing time, and they carry no label."""
    from matplotlib.ticker import FuncFormatter, NullLocator

    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(_log_label))
        axis.set_minor_locator(NullLocator())


def convergence_svg(rows: pd.DataFrame, metric_column: str, target: float, axis: str,
                    colors: dict[str, str], title: str) -> str:
    """Median and 20–80% band over seeds of the target metric, one line per solver entry."""
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(5.6, 3.5))
    x_column = AXIS_COLUMNS[axis]
    drawn = False
    if metric_column in rows and x_column in rows:
        data = rows[["solver_label", "run_id", "status", x_column, metric_column]].copy()
        data[x_column] = pd.to_numeric(data[x_column], errors="coerce")
        data[metric_column] = pd.to_numeric(data[metric_column], errors="coerce")
        positive = data[x_column][data[x_column] > 0]
        if not positive.empty:
            grid = np.geomspace(positive.min(), data[x_column].max(), GRID_POINTS)
            # Every entry's runs at once, then each entry's block of rows (runs sorted by entry).
            labels, stacks = _labelled_curves(data, x_column, metric_column, grid, keys=["solver_label", "run_id"])
            bounds = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]]) if labels.size else np.empty(0, int)
            for label, stack in zip(labels[bounds], np.split(stacks, bounds[1:])):
                present = np.isfinite(stack).any(axis=0)
                if not present.any():
                    continue
                mid, low, high = (column_quantiles(stack, q) for q in (0.5, 0.2, 0.8))
                color = colors.get(label, "#333333")
                ax.plot(grid[present], mid[present], color=color, lw=1.6, label=f"{label} (n={stack.shape[0]})")
                ax.fill_between(grid[present], low[present], high[present], color=color, alpha=0.18, lw=0)
                drawn = True
    if drawn:
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log_axes(ax)
        ax.axhline(target, color="#444444", ls="--", lw=1, label=f"target {target:g}")
        ax.legend(fontsize=7.5, frameon=False, loc="upper left", bbox_to_anchor=(0.0, -0.2), ncol=1)
    else:
        ax.text(0.5, 0.5, "no evaluation to plot", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(AXIS_LABELS[axis])
    ax.set_ylabel(metric_column.removeprefix("objective_"))
    ax.set_title(title, fontsize=9.5)
    ax.grid(True, which="major", alpha=0.3)
    return to_svg(figure)


def profile_svg(profiles: dict[str, pd.DataFrame], colors: dict[str, str], title: str) -> str:
    """Performance profiles ρ(τ) on τ ∈ [1, 4], one panel per axis ('time', 'oracle')."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(profiles), figsize=(4.6 * len(profiles), 3.0), squeeze=False)
    for ax, (axis, profile) in zip(axes[0], profiles.items()):
        for label, curve in profile.groupby("solver_label", sort=True):
            curve = curve.sort_values("tau")
            ax.step(curve["tau"], curve["rho"], where="post", color=colors.get(label, "#333333"), lw=1.6,
                    label=label)
        ax.set_xlim(1.0, TAU_MAX)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(f"τ (ratio to the best, {axis})")
        ax.set_ylabel("ρ(τ): fraction of problems")
        ax.set_title(f"{title} — {axis}", fontsize=9.5)
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, fontsize=7.5, frameon=False, loc="upper left",
                      bbox_to_anchor=(0.02, 0.0), ncol=2)
    return to_svg(figure)
