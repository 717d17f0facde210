"""The Hypergradients page (SITE/hypergradients.html): the hypergradient-quality track's results
(`benchopt-bilevel hypergradients`, OUT/hypergradients/*.parquet), per problem the error of every
estimator against its oracle calls and against its time (Pareto plots, inline SVG), and the table
of the cheapest estimator reaching each relative-error threshold.

It reads the track's parquet only; nothing is measured or recomputed here.
"""
from __future__ import annotations

import datetime
import html
import os
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from .. import __version__
from .. import hypergradients as track
from ..atomic import atomic_write
from ..cli_hypergradients import load_track
from . import plots
from .templates import CSS

PAGE_NAME = "hypergradients.html"
PAGE_CSS = """
section.problem { margin: 1.5em 0; }
.pareto { display: flex; flex-wrap: wrap; gap: 12px; }
.pareto figure { margin: 0; flex: 1 1 480px; min-width: 360px; }
.pareto svg { width: 100%; height: auto; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def find_track(sources: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Every hypergradient measurement of the sources' OUT/hypergradients/ folders (empty when none)."""
    tables = [load_track(source) for source in sources if Path(source).is_dir()]
    tables = [t for t in tables if not t.empty]
    return pd.concat(tables, ignore_index=True).drop_duplicates() if tables else pd.DataFrame()


def _cheapest_table(table: pd.DataFrame, problem: str) -> str:
    rows = []
    for _, row in track.cheapest(table[table["problem"] == problem]).iterrows():
        found = isinstance(row["estimator"], str)
        budget = "" if not found or row["budget"] != row["budget"] else f" = {row['budget']:g}"
        estimator = _e(f"{row['estimator']}{budget}") if found else "none reaches it"
        calls = f"{row['oracle_calls']:.0f}" if found else "–"
        milliseconds = f"{1e3 * row['step_time']:.3g}" if found else "–"
        rows.append(f'<tr data-threshold="{row["threshold"]:g}"><td>{_e(row["x_point"])}</td>'
                    f'<td>{_e(row["y_point"])}</td><td>≤ {row["threshold"]:g}</td><td>{estimator}</td>'
                    f'<td class="num">{calls}</td><td class="num">{milliseconds}</td></tr>')
    return ('<table class="cheapest"><thead><tr><th>x</th><th>y</th><th>relative error</th>'
            '<th>cheapest estimator (budget)</th><th>oracle calls</th><th>time (ms)</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _section(table: pd.DataFrame, problem: str, index: int) -> str:
    figures = "".join(f'<figure data-cost="{cost}">{plots.to_svg(track.pareto_figure(table, problem, cost))}'
                      f"<figcaption class=\"meta\">relative error against {_e(label)}</figcaption></figure>"
                      for cost, label in track.COST_AXES.items())
    estimators = sorted(table.loc[table["problem"] == problem, "estimator"].unique())
    return (f'<section class="problem" id="problem-{index}" data-problem="{_e(problem)}">'
            f"<h2><code>{_e(problem)}</code></h2>"
            f'<p class="meta">{len(estimators)} estimators: {_e(", ".join(estimators))}</p>'
            f'<div class="pareto">{figures}</div>{_cheapest_table(table, problem)}</section>')


def render_hypergradients(table: pd.DataFrame, site_dir: str | os.PathLike,
                          title: str = "Hypergradient quality") -> Path:
    """Write SITE_DIR/hypergradients.html for the track's measurements; returns its path."""
    problems = list(dict.fromkeys(table["problem"]))
    generated = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    thresholds = " and ".join(f"{t:g}" for t in track.THRESHOLDS)
    body = "".join(_section(table, problem, i) for i, problem in enumerate(problems))
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="benchopt-bilevel {_e(__version__)}">
<title>{_e(title)}</title>
<style>{CSS}{PAGE_CSS}</style>
</head>
<body>
<header>
<h1>{_e(title)}</h1>
<p class="meta"><a href="index.html">← the leaderboard</a></p>
<p class="meta" id="hypergradients-summary">{len(problems)} problem(s), {table["estimator"].nunique()} estimators,
{len(table)} measurements.</p>
<p class="meta">Every estimator's hypergradient, from one step at fixed points (x0 and a point near x*; the exact
y*(x) and y after {track.INNER_STEPS} inner steps), against the problem's exact ∇h: relative error
‖ĝ − ∇h‖ / ‖∇h‖ (median over seeds) as its budget grows, against its oracle calls and its synchronized time a step.
The tables name the cheapest estimator (in oracle calls) reaching a relative error of {thresholds}.</p>
</header>
<main>{body}</main>
<footer>Generated {_e(generated)} by benchopt-bilevel {_e(__version__)} from the measurements written by
<code>benchopt-bilevel hypergradients</code>. Static page: no network access, plots are inline SVG.</footer>
<script>document.body.setAttribute("data-ready", "true");</script>
</body>
</html>
"""
    site_dir = Path(site_dir)
    site_dir.mkdir(parents=True, exist_ok=True)
    return atomic_write(site_dir / PAGE_NAME, page.encode("utf-8"))


def publish_hypergradients(sources: Iterable[str | os.PathLike], site_dir: str | os.PathLike) -> str | None:
    """Write SITE_DIR/hypergradients.html when a source holds the track's measurements (and remove
    a stale one when none does); returns the page's link for the leaderboard, or None."""
    table = find_track(sources)
    page = Path(site_dir) / PAGE_NAME
    if table.empty:
        page.unlink(missing_ok=True)
        return None
    render_hypergradients(table, site_dir)
    return PAGE_NAME


__all__ = ["PAGE_NAME", "find_track", "publish_hypergradients", "render_hypergradients"]
