"""The summary printed after `run` and by `show`: the entries of `scoring.summary` (computed
with `run_table(results, strict=False)`, so problems without a target are shown too) as one
table per problem.

It fits an 80-column terminal without cutting a name: the problem and its target metric head
each table (named once, not on every row), the solver column never wraps and the numbers are
short and the column headers are single words, explained once in a footnote.
"""
from __future__ import annotations

import math

import pandas as pd
from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from .results import STATUSES
from .scoring import problem_target

FOOTNOTE = ("time: synchronized seconds of solver steps (evaluation excluded); final: the target "
            "metric at the end of the runs; to target: seconds to reach it (runs that did / runs); "
            "medians over seeds.")


def target_of(problem: str) -> tuple[str, float]:
    """(metric column, target value) documented by the problem class; NaN value when none."""
    target = problem_target(problem, strict=False)
    return target.column, target.value


def _number(value: float) -> str:
    if isinstance(value, float) and math.isinf(value):
        return "—"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return f"{value:.3g}"


def status_text(entry: pd.Series) -> str:
    """'ok', or 'diverged×2, ok' for an entry whose runs ended differently."""
    counts = {status: int(entry.get(f"n_{status}", 0)) for status in STATUSES}
    return ", ".join(f"{s}×{n}" if n > 1 else s for s, n in sorted(counts.items()) if n)


def _problem_table(title: str, entries: pd.DataFrame, width: int) -> Table:
    rows = []
    for _, entry in entries.iterrows():
        reached = f" ({entry['n_reached']}/{entry['n_runs']})" if entry["n_runs"] > 1 else ""
        steps = entry["final_step_median"]
        rows.append([entry["solver_label"], status_text(entry), "nan" if math.isnan(steps) else str(int(steps)),
                     _number(entry["final_time_median"]), _number(entry["final_metric_median"]),
                     _number(entry["time_median"]) + reached])
    headers = ["solver", "status", "steps", "time", "final", "to target"]
    columns = [[header, *cells] for header, cells in zip(headers, zip(*rows))]
    # Too wide: status and to-target wrap at their spaces, set here to their longest word
    # (rich's own shrinking would cut words); the solver and the numbers never wrap.
    squeeze = sum(max(map(len, column)) for column in columns) + 2 * (len(columns) - 1) > width
    table = Table(title=Text(title), title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False, padding=(0, 1, 0, 0))
    for index, (header, column) in enumerate(zip(headers, columns)):
        wraps = header in ("status", "to target")
        words = max(len(word) for cell in column for word in cell.split())
        table.add_column(header, justify="left" if index < 2 else "right", no_wrap=not wraps,
                         width=words if wraps and squeeze else None)
    for row in rows:
        table.add_row(*map(Text, row))  # Text: a label's "[...]" is no console markup
    return table


def summary_view(entries: pd.DataFrame, width: int = 80) -> Group:
    """`entries` (from `scoring.summary`) as a rich renderable for a terminal of `width` columns:
    a table per problem (per device class and problem when there are several device classes),
    headed by its target, then a footnote."""
    several_devices = entries["device_class"].nunique() > 1 if len(entries) else False
    tables = []
    for (device, problem), group in entries.groupby(["device_class", "problem_label"], sort=True):
        first = group.iloc[0]
        title = f"{problem}: {first['target_metric']} ≤ {first['target_value']:g}"
        if several_devices:
            title += f" on {device}"
        tables.append(_problem_table(title, group.sort_values("rank"), width))
    if not tables:
        return Group(Text("no runs"))
    return Group(*tables, Text(FOOTNOTE, style="dim"))


def failure_notes(entries: pd.DataFrame, width: int = 320) -> list[str]:
    """One line per entry whose runs did not all end `ok`: the first run's message (why it
    failed, or was skipped), so the table never hides a reason. A longer message keeps its head
    and its tail (where the remedy usually is) within `width` characters."""
    notes = []
    for _, entry in entries.iterrows():
        status = status_text(entry)
        if status == "ok" or not entry["message"]:
            continue
        message = " ".join(str(entry["message"]).split())
        if len(message) > width:
            message = message[:width // 3] + " … " + message[-(width - width // 3 - 3):]
        notes.append(f"{entry['problem_label']} {entry['solver_label']} ({status}): {message}")
    return notes
