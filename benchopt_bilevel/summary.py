"""The summary table printed after `run` and by `show`: one line per (problem, solver)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from rich.table import Table

from .scoring import median, problem_target, run_table


def target_of(problem: str) -> tuple[str, float]:
    """(metric column, target value) documented by the problem class; NaN value when none."""
    target = problem_target(problem, strict=False)
    return target.column, target.value


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Per (problem, solver): runs, statuses, median final metric, median time-to-target, steps.

    Times-to-target come from `scoring.run_table` (the leaderboard's definition), so `show` and
    the published leaderboard always agree.
    """
    runs = run_table(results, strict=False)
    lines = []
    for (problem, solver), group in runs.groupby(["problem", "solver"], sort=True):
        statuses = group["status"].value_counts().to_dict()
        lines.append({
            "problem": problem,
            "solver": solver,
            "runs": len(group),
            "status": ", ".join(f"{k}×{v}" if v > 1 else k for k, v in sorted(statuses.items())),
            "metric": group["target_metric"].iloc[0],
            "final_metric": median(group["final_metric"]),
            "target": float(group["target_value"].iloc[0]),
            "time_to_target": median(group["time_to_target"]),
            "reached": int(group["reached"].sum()),
            "steps": int(np.nan_to_num(median(group["final_step"]))),
            "time": float(np.nan_to_num(median(group["final_time"]))),
            "message": next((m for m in group["message"] if isinstance(m, str) and m), ""),
        })
    summary = pd.DataFrame(lines)
    if len(summary):
        summary = summary.sort_values(["problem", "time_to_target", "final_metric"]).reset_index(drop=True)
    return summary


def _format(value: float, unit: str = "") -> str:
    if isinstance(value, float) and math.isinf(value):
        return "—"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return f"{value:.3g}{unit}"


def summary_table(summary: pd.DataFrame) -> Table:
    """The summary as a rich table."""
    table = Table(title="benchopt-bilevel results", show_lines=False)
    for name, justify in (("problem", "left"), ("solver", "left"), ("status", "left"), ("runs", "right"),
                          ("steps", "right"), ("time", "right"), ("final metric", "right"),
                          ("time to target", "right")):
        table.add_column(name, justify=justify)
    for _, line in summary.iterrows():
        reached = f" ({line['reached']}/{line['runs']})" if line["runs"] > 1 else ""
        table.add_row(line["problem"], line["solver"], line["status"], str(line["runs"]), str(line["steps"]),
                      _format(line["time"], " s"),
                      f"{line['metric']} {_format(line['final_metric'])}",
                      _format(line["time_to_target"], " s") + reached)
    if len(summary):
        targets = ", ".join(f"{p}: {g['metric'].iloc[0]} ≤ {g['target'].iloc[0]:g}"
                            for p, g in summary.groupby("problem"))
        table.caption = f"target — {targets}; time = synchronized seconds of solver steps (evaluation excluded)"
    return table


def failure_notes(summary: pd.DataFrame, width: int = 320) -> list[str]:
    """One line per (problem, solver) whose runs did not all end `ok`: the first run's message
    (why it failed, or was skipped), so the table never hides a reason. A longer message keeps
    its head and its tail (where the remedy usually is) within `width` characters."""
    notes = []
    for _, line in summary.iterrows():
        if line["status"] == "ok" or not line["message"]:
            continue
        message = " ".join(str(line["message"]).split())
        if len(message) > width:
            message = message[:width // 3] + " … " + message[-(width - width // 3 - 3):]
        notes.append(f"{line['problem']} {line['solver']} ({line['status']}): {message}")
    return notes
