"""The Claims page (SITE/claims.html): one row per claim of a claims table (`claims.run`), its
verdict, the evidence figures and a plot of its runs, in the leaderboard's style.

It reads the claims table only (the verdicts, figures and curves `benchopt-bilevel claims`
wrote); nothing is run or recomputed here.
"""
from __future__ import annotations

import datetime
import html
import os
from pathlib import Path
from typing import Any, Iterable

from .. import __version__
from ..atomic import atomic_write
from ..claims.table import read_claims
from . import plots
from .templates import CSS

PAGE_NAME = "claims.html"
VERDICT_CSS = """
.verdict { font-weight: 600; padding: 1px 8px; border-radius: 10px; white-space: nowrap; }
.verdict-holds { background: #dafbe1; color: #116329; }
.verdict-fails { background: #ffebe9; color: #cf222e; }
.verdict-inconclusive { background: #fff8c5; color: #7d4e00; }
td.claim-plot { min-width: 360px; width: 40%; }
td.claim-plot svg { width: 100%; height: auto; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def find_claims(sources: Iterable[str | os.PathLike]) -> list[dict[str, Any]]:
    """The claims of every source folder that holds a claims table, each id once (first source wins)."""
    found: dict[str, dict[str, Any]] = {}
    for source in sources:
        for entry in read_claims(source):
            found.setdefault(entry["id"], entry)
    return [found[key] for key in sorted(found)]


def claim_svg(entry: dict[str, Any]) -> str:
    """Each seed's curve of the claim's plot, one colour per solver specification."""
    plt = plots._pyplot()
    figure, ax = plt.subplots(figsize=(5.2, 3.1))
    spec = entry.get("plot", {})
    curves = entry.get("curves") or {}
    colors = plots.colors_for(curves)
    drawn = False
    for label, runs in curves.items():
        for index, (xs, ys) in enumerate(runs):
            points = [(float(x), float(y)) for x, y in zip(xs, ys) if _number(x) and _number(y)]
            if spec.get("log_y", True):
                points = [(x, max(y, plots.FLOOR)) for x, y in points]
            if not points:
                continue
            ax.plot(*zip(*points), color=colors[label], lw=1.3, alpha=0.85, label=label if index == 0 else None)
            drawn = True
    if drawn:
        if spec.get("log_y", True):
            ax.set_yscale("log")
            from matplotlib.ticker import FuncFormatter, NullLocator  # noqa: PLC0415 - after the Agg backend

            ax.yaxis.set_major_formatter(FuncFormatter(plots._log_label))  # plain text, as the leaderboard's
            ax.yaxis.set_minor_locator(NullLocator())
        ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(0.0, -0.22), ncol=1)
    else:
        ax.text(0.5, 0.5, "no runs to plot", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(str(spec.get("x", "")).removeprefix("objective_"))
    ax.set_ylabel(str(spec.get("y", "")).removeprefix("objective_"))
    ax.grid(True, alpha=0.3)
    return plots.to_svg(figure)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and value == value


def _figures(figures: dict[str, Any]) -> str:
    rows = []
    for name, value in figures.items():
        if isinstance(value, dict) and "median" in value:
            text = f"{_fmt(value['median'])} [{_fmt(value['min'])}, {_fmt(value['max'])}] (n={value.get('n', '')})"
        elif isinstance(value, list):
            text = "; ".join(map(str, value))
        else:
            text = _fmt(value)
        rows.append(f"<dt>{_e(name)}</dt><dd>{_e(text)}</dd>")
    return '<dl class="kv">' + "".join(rows) + "</dl>" if rows else ""


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _row(entry: dict[str, Any]) -> str:
    verdict = entry.get("verdict", "inconclusive")
    e = entry.get("experiment", {})
    budget = f"{e.get('max_steps')} steps" if e.get("max_steps") else f"{e.get('max_time')} s"
    experiment = (f"<code>{_e(e.get('problem', ''))}</code> × " + ", ".join(f"<code>{_e(s)}</code>"
                  for s in e.get("solvers", [])) + f"; {len(e.get('seeds', []))} seeds, {_e(budget)}, "
                  f"{_e(e.get('dtype', ''))}")
    return (f'<tr id="claim-{_e(entry["id"])}" data-verdict="{_e(verdict)}">'
            f'<td><span class="verdict verdict-{_e(verdict)}">{_e(verdict)}</span></td>'
            f'<td><strong>{_e(entry["id"])}</strong><p>{_e(entry.get("statement", ""))}</p>'
            f'<p class="meta">{_e(entry.get("paper", ""))}</p>'
            f"<p><strong>Evidence:</strong> {_e(entry.get('summary', ''))}</p>"
            f"<details><summary>Figures, experiment and thresholds</summary>{_figures(entry.get('figures', {}))}"
            f"<p>{experiment}</p><p class=\"meta\">Scale: {_e(entry.get('scale', ''))}</p>"
            f"<p class=\"meta\">{_e(entry.get('notes', ''))}</p></details></td>"
            f'<td class="claim-plot">{claim_svg(entry)}</td></tr>')


def render_claims(entries: list[dict[str, Any]], site_dir: str | os.PathLike,
                  title: str = "Claims of the papers") -> Path:
    """Write SITE_DIR/claims.html for ENTRIES (the claims table's); returns its path."""
    counts = {v: sum(e.get("verdict") == v for e in entries) for v in ("holds", "fails", "inconclusive")}
    generated = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    body = "".join(_row(entry) for entry in entries)
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="benchopt-bilevel {_e(__version__)}">
<title>{_e(title)}</title>
<style>{CSS}{VERDICT_CSS}</style>
</head>
<body>
<header>
<h1>{_e(title)}</h1>
<p class="meta"><a href="index.html">← the leaderboard</a></p>
<p class="meta" id="claims-summary">{len(entries)} claims: {counts['holds']} hold, {counts['fails']} fail,
{counts['inconclusive']} inconclusive.</p>
<p class="meta">Each claim is a paper's headline statement turned into an experiment (ordinary runs, several seeds)
and a predicate over its result rows: <b>holds</b> when the figures meet the stated thresholds, <b>fails</b> when
they do not, <b>inconclusive</b> when the runs could not measure it (a missing option or column, a run that
errored). Figures are medians over seeds with their [min, max]; the plot shows every seed.</p>
</header>
<main>
<table id="claims"><thead><tr><th>verdict</th><th>claim and evidence</th><th>runs</th></tr></thead>
<tbody>{body}</tbody></table>
</main>
<footer>Generated {_e(generated)} by benchopt-bilevel {_e(__version__)} from the claims table written by
<code>benchopt-bilevel claims</code>. Static page: no network access, plots are inline SVG.</footer>
<script>document.body.setAttribute("data-ready", "true");</script>
</body>
</html>
"""
    site_dir = Path(site_dir)
    site_dir.mkdir(parents=True, exist_ok=True)
    return atomic_write(site_dir / PAGE_NAME, page.encode("utf-8"))


def publish_claims(sources: Iterable[str | os.PathLike], site_dir: str | os.PathLike) -> str | None:
    """Write SITE_DIR/claims.html when a source holds claims (and remove a stale one when none
    does); returns the page's link for the leaderboard, or None."""
    entries = find_claims(sources)
    page = Path(site_dir) / PAGE_NAME
    if not entries:
        page.unlink(missing_ok=True)
        return None
    render_claims(entries, site_dir)
    return PAGE_NAME


__all__ = ["PAGE_NAME", "claim_svg", "find_claims", "publish_claims", "render_claims"]
