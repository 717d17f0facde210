"""Render the static leaderboard (index.html) from result tables."""
from __future__ import annotations

import datetime
import html
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from .. import __version__
from ..errors import UserError
from ..provenance import git_revision
from ..atomic import atomic_write
from ..scoring import (STATUSES, TargetOverrides, label_rows, mixed_paths, performance_profiles, run_table,
                       scores, summary)
from . import plots
from .templates import CSS, JS, PAGE

DEFAULT_TITLE = "Bilevel optimization leaderboard"
# Past this, inline plots make the page slow to open (10,000 runs: 80 plots, ~15 MB).
MAX_PAGE_BYTES = 4 * 2 ** 20


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


# -- number formats ----------------------------------------------------------------------------
def format_seconds(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if math.isinf(value):
        return "∞"
    if value < 1e-3:
        return f"{value * 1e6:.3g} µs"
    if value < 1:
        return f"{value * 1e3:.3g} ms"
    if value < 120:
        return f"{value:.3g} s"
    return f"{value / 60:.3g} min"


def format_count(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if math.isinf(value):
        return "∞"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.0f}"


def format_bytes(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    for scale, suffix in ((2 ** 30, "GiB"), (2 ** 20, "MiB"), (2 ** 10, "KiB")):
        if value >= scale:
            return f"{value / scale:.3g} {suffix}"
    return f"{value:.0f} B"


def format_metric(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.3g}"


def _data_value(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(float(value))


def device_title(device_class: str) -> str:
    device, _, name = device_class.partition(": ")
    kind = {"cpu": "CPU", "cuda": "GPU"}.get(device, device.upper())
    return f"{kind} — {name}"


# -- tuning artefacts ----------------------------------------------------------------------------
def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0)
    return a == b


def match_tuning(entry: pd.Series, artefacts: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The (artefact, solver report) whose selection produced this leaderboard entry, if any."""
    try:
        solver_params = json.loads(entry["solver_params"]) if entry["solver_params"] else None
        problem_params = json.loads(entry["problem_params"])
    except (TypeError, ValueError):
        return None
    if solver_params is None:
        return None
    for artefact in artefacts:
        tuning = artefact["tuning"]
        if tuning.get("problem_name") != entry["problem"]:
            continue
        expected = tuning.get("problem_params") or {}
        if set(expected) != set(problem_params) or not all(_same(expected[k], problem_params[k]) for k in expected):
            continue
        report = tuning.get("solvers", {}).get(entry["solver"])
        if not report:
            continue
        chosen = {**(report.get("fixed") or {}), **(report.get("selected") or {})}
        if all(k in solver_params and _same(v, solver_params[k]) for k, v in chosen.items()):
            return artefact, report
    return None


def _range_text(dim: dict[str, Any]) -> str:
    if "values" in dim:
        return ", ".join(map(str, dim["values"]))
    return f"{dim.get('low')} … {dim.get('high')}"


def _tuning_panel(anchor: str, label: str, artefact: dict[str, Any], report: dict[str, Any]) -> str:
    tuning = artefact["tuning"]
    budget = tuning.get("budget", {})
    space_rows = "".join(
        f"<tr><td><code>{_e(name)}</code></td><td>{_e(dim.get('type'))}</td><td>"
        f"{_e(_range_text(dim))}"
        f"</td><td>{_e(report.get('selected', {}).get(name, ''))}</td></tr>"
        for name, dim in (report.get("search_space") or {}).items())
    tuned, fresh = report.get("tuning_score", {}), report.get("fresh_score", {})
    return f"""
<details class="tuning" id="{anchor}">
<summary>Tuning of {_e(label)}: artefact <code>{_e(tuning.get('label'))}</code> (version {_e(tuning.get('version'))})</summary>
<dl class="kv">
<dt>budget</dt><dd>{_e(budget.get('trials'))} quasi-random trials ({_e(tuning.get('sampler', {}).get('name', 'halton'))})
 × {_e(budget.get('tuning_seeds'))} tuning seeds = {_e(budget.get('runs_per_solver'))} runs,
 max_time {_e(budget.get('max_time'))} s each; {_e(report.get('n_distinct'))} distinct trials</dd>
<dt>selection</dt><dd>{_e(tuning.get('selection'))}: trial {_e(report.get('selected_trial'))}</dd>
<dt>selected spec</dt><dd><code>{_e(report.get('spec'))}</code></dd>
<dt>fixed</dt><dd>{_e(report.get('fixed') or '—')}</dd>
<dt>tuning seeds {_e(tuning.get('tuning_seeds'))}</dt><dd>median time-to-target {format_seconds(tuned.get('time_to_target_median', math.nan))},
 final metric {format_metric(tuned.get('final_metric_median', math.nan))}, reached {_e(tuned.get('n_reached'))}/{_e(tuned.get('n_runs'))}</dd>
<dt>fresh seeds {_e(tuning.get('fresh_seeds'))}</dt><dd>median time-to-target {format_seconds(fresh.get('time_to_target_median', math.nan))},
 final metric {format_metric(fresh.get('final_metric_median', math.nan))}, reached {_e(fresh.get('n_reached'))}/{_e(fresh.get('n_runs'))}</dd>
<dt>created</dt><dd>{_e(tuning.get('created'))}</dd>
</dl>
<table class="space"><thead><tr><th>parameter</th><th>distribution</th><th>range</th><th>selected</th></tr></thead>
<tbody>{space_rows}</tbody></table>
</details>"""


# -- page parts ------------------------------------------------------------------------------------
COLUMNS = [  # (key, header, numeric)
    ("rank", "Rank", True), ("solver", "Solver", False), ("time", "Time to target (median) [20–80%]", True),
    ("ratio", "Ratio to best", True), ("final", "Final metric (median)", True), ("reached", "Reached", True),
    ("status", "Status", False), ("oracle", "Oracle calls to target (median) [20–80%]", True),
    ("memory", "Peak memory", True)]


MEMORY_METHODS = {  # memory_method -> how the peak memory column was measured (benchopt_bilevel/memory.py)
    "cuda_allocated_delta": "CUDA: the allocator's peak of tensors above the start",
    "linux_hwm_delta": "CPU: the growth of the process's resident set (VmHWM) above the start",
    "process_peak_rss": "CPU: the whole process's peak resident size (no per-run measurement here)"}


def _memory_note(rows: pd.DataFrame) -> str:
    """How this tab's peak memory was measured, from the rows' memory_method column."""
    methods = sorted(set(rows["memory_method"].dropna())) if "memory_method" in rows else []
    known = "; ".join(MEMORY_METHODS[m] for m in methods if m in MEMORY_METHODS) or "not recorded"
    return ("<p class=\"muted\">Peak memory: the run's own, median over seeds, measured from just after "
            "the problem's data are built (state, oracles, working tensors; warm-up and evaluations "
            f"excluded): {_e(known)}.</p>")


def _wrap(label: str) -> str:
    """A solver label, escaped, with line-break opportunities after commas and brackets."""
    return _e(label).replace(",", ",<wbr>").replace("[", "[<wbr>")


def _ratio_text(value: float) -> str:
    return "∞" if math.isinf(value) else f"{value:.2f}×"


def _status_text(entry: pd.Series) -> str:
    parts = []
    for status in STATUSES:
        count = int(entry.get(f"n_{status}", 0))
        if count:
            parts.append(f'<span class="status-{status}">{count} {status}</span>')
    return " · ".join(parts) or "–"


def uses_defaults(entry: pd.Series) -> bool:
    """Whether the entry ran its solver's default parameters (each from its paper, the reference
    benchmark or ours: `parameter_sources`)."""
    from ..params import params_to_dict
    from ..registry import get_solver

    try:
        params = json.loads(entry["solver_params"]) if entry["solver_params"] else None
        defaults = params_to_dict(get_solver(str(entry["solver"])).Params())
    except (TypeError, ValueError, UserError):
        return False
    defaults = json.loads(json.dumps(defaults, default=str))  # as stored: JSON types
    return isinstance(params, dict) and set(params) == set(defaults) and all(
        _same(params[k], defaults[k]) for k in defaults)


def parameter_sources(entry: pd.Series) -> list[tuple[str, Any, str | None]]:
    """(parameter, value, where its default comes from) for each parameter of the entry's solver;
    the source is None for a value the entry set itself; [] when the solver is not registered."""
    from ..params import params_to_dict, provenance
    from ..registry import get_solver

    try:
        cls = get_solver(str(entry["solver"]))
        params = json.loads(entry["solver_params"]) if entry["solver_params"] else {}
    except (TypeError, ValueError, UserError):
        return []
    defaults = json.loads(json.dumps(params_to_dict(cls.Params()), default=str))  # as stored: JSON types
    sources = provenance(cls.Params)
    rows = []
    for name, default in defaults.items():
        value = params.get(name, default) if isinstance(params, dict) else default
        source = sources.get(name)
        rows.append((name, value, (str(source) if source else "undeclared") if _same(value, default) else None))
    return rows


def _sources_title(rows: list[tuple[str, Any, str | None]]) -> str:
    """The tooltip of an entry's solver: one parameter a line, with where its default comes from."""
    return "\n".join(f"{name}={value}: " + (f"default ({source})" if source else "set for this entry")
                      for name, value, source in rows)


def _sources_line(rows: list[tuple[str, Any, str | None]]) -> str:
    """'defaults: 2 paper · 1 reference · 1 ours', counted over the parameters left at their default."""
    counts: dict[str, int] = {}
    for _, _, source in rows:
        if source is not None:
            kind = source.split(":", 1)[0]
            counts[kind] = counts.get(kind, 0) + 1
    return "defaults: " + " · ".join(f"{count} {kind}" for kind, count in counts.items()) if counts else ""


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


def _paths_note(paths: dict[str, list[str]]) -> str:
    """The line above a ranking that mixes step paths (`scoring.mixed_paths`); '' when it does not."""
    if not paths:
        return ""
    groups = "; ".join(f"{_e(path)}: {_e(', '.join(labels))}" for path, labels in paths.items())
    return ('<p class="meta paths">This ranking mixes step paths (' + groups + "). An eager step pays "
            "PyTorch's per-op dispatch and a fast or compiled one does not, so on a problem whose step "
            "is overhead-bound the path alone can order two entries (docs/compile.md).</p>")


def _leaderboard_table(table_id: str, problem_label: str, entries: pd.DataFrame,
                       tuned: dict[str, tuple[str, str]], messages: dict[str, str], mixed: bool = False) -> str:
    head = "".join(f'<th data-key="{k}" data-type="{"num" if n else "text"}" scope="col">{_e(h)}</th>'
                   for k, h, n in COLUMNS)
    rows = []
    for _, entry in entries.iterrows():
        label = entry["solver_label"]
        badge = ""
        sources = parameter_sources(entry)
        if label in tuned:
            anchor, artefact_label = tuned[label]
            badge = f'<a class="badge" href="#{anchor}" title="tuned: {_e(artefact_label)}">tuned</a>'
        elif uses_defaults(entry):
            line = _sources_line(sources)
            badge = (f'<span class="badge default" title="the solver\'s defaults (docs/solvers.md)">default</span>'
                     + (f'<span class="sources">{_e(line)}</span>' if line else ""))
        if mixed:  # every row says its path when the ranking mixes them
            badge += f'<span class="badge path" title="step path">{_e(entry["path"])}</span>'
        solver_title = f' title="{_e(_sources_title(sources))}"' if sources else ""
        reached = entry["n_reached"] / entry["n_runs"] if entry["n_runs"] else math.nan
        missed = " missed" if math.isinf(entry["time_median"]) else ""
        title = f' title="{_e(messages[label])}"' if messages.get(label) else ""
        rows.append(
            f'<tr class="entry{missed}" data-solver="{_e(label)}">'
            f'<td class="num" data-value="{int(entry["rank"])}">{int(entry["rank"])}</td>'
            f'<td class="solver-cell" data-value="{_e(label)}"><span class="solver"{solver_title}>{_wrap(label)}</span>{badge}</td>'
            f'<td class="num time" data-value="{_data_value(entry["time_median"])}">{format_seconds(entry["time_median"])}'
            f' <span class="band">[{format_seconds(entry["time_low"])} – {format_seconds(entry["time_high"])}]</span></td>'
            f'<td class="num" data-value="{_data_value(entry["time_ratio"])}">'
            f'{_ratio_text(entry["time_ratio"])}</td>'
            f'<td class="num" data-value="{_data_value(entry["final_metric_median"])}">{format_metric(entry["final_metric_median"])}</td>'
            f'<td class="num" data-value="{_data_value(reached)}">{int(entry["n_reached"])}/{int(entry["n_runs"])}</td>'
            f'<td{title}>{_status_text(entry)}</td>'
            f'<td class="num" data-value="{_data_value(entry["oracle_median"])}">{format_count(entry["oracle_median"])}'
            f' <span class="band">[{format_count(entry["oracle_low"])} – {format_count(entry["oracle_high"])}]</span></td>'
            f'<td class="num" data-value="{_data_value(entry["peak_memory_median"])}">{format_bytes(entry["peak_memory_median"])}</td>'
            "</tr>")
    return (f'<div class="table-wrap"><table class="sortable leaderboard" id="{table_id}" data-problem="{_e(problem_label)}">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def _score_table(table_id: str, device_scores: dict[str, pd.DataFrame]) -> str:
    time_scores = device_scores["time"].set_index("solver_label")
    oracle_scores = device_scores["oracle"].set_index("solver_label")
    rows = []
    for position, (label, row) in enumerate(time_scores.iterrows(), start=1):
        oracle = oracle_scores.loc[label, "score"] if label in oracle_scores.index else math.nan
        rows.append(f'<tr data-solver="{_e(label)}"><td class="num" data-value="{position}">{position}</td>'
                    f'<td class="solver-cell" data-value="{_e(label)}">{_wrap(label)}</td>'
                    f'<td class="num" data-value="{_data_value(row["score"])}">{row["score"]:.3f}</td>'
                    f'<td class="num" data-value="{_data_value(oracle)}">{"–" if math.isnan(oracle) else f"{oracle:.3f}"}</td>'
                    f'<td class="num" data-value="{int(row["n_best"])}">{int(row["n_best"])}</td>'
                    f'<td class="num" data-value="{int(row["n_solved"])}">{int(row["n_solved"])}/{int(row["n_problems"])}</td></tr>')
    head = "".join(f'<th data-key="{k}" data-type="{t}">{h}</th>' for k, h, t in (
        ("rank", "#", "num"), ("solver", "Solver", "text"), ("score", "Score (time)", "num"),
        ("score_oracle", "Score (oracle calls)", "num"), ("best", "Best on", "num"), ("solved", "Solved", "num")))
    return (f'<div class="table-wrap"><table class="sortable scores-table" id="{table_id}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _provenance_panel(rows: pd.DataFrame) -> str:
    fields = [("runs", None), ("package_version", "package"), ("git_revision", "git revision"),
              ("torch_version", "torch"), ("python_version", "python"), ("device_name", "device"),
              ("threads", "threads"), ("hostname", "host"), ("dtype", "dtype"), ("path", "step path"),
              ("schema_version", "result schema"), ("code_hash", "code hash")]
    blocks = []
    for device, group in rows.groupby("device_class", sort=True):
        items = [f"<dt>runs</dt><dd>{group['run_id'].nunique()}</dd>"]
        for column, name in fields[1:]:
            if column in group:
                values = sorted({str(v) for v in group[column].dropna().unique()})
                shown = ", ".join(values[:6]) + (f" (+{len(values) - 6} more)" if len(values) > 6 else "")
                items.append(f"<dt>{_e(name)}</dt><dd><code>{_e(shown)}</code></dd>")
        if "timestamp" in group and group["timestamp"].notna().any():
            stamps = group["timestamp"].dropna().astype(str)
            items.append(f"<dt>run between</dt><dd>{_e(stamps.min())} and {_e(stamps.max())}</dd>")
        blocks.append(f'<details open class="provenance" data-device="{_e(device)}"><summary>{_e(device_title(device))}'
                      f'</summary><dl class="kv">{"".join(items)}</dl></details>')
    import matplotlib

    blocks.append(f'<details class="provenance site"><summary>This page</summary><dl class="kv">'
                  f"<dt>benchopt-bilevel</dt><dd><code>{_e(__version__)}</code></dd>"
                  f"<dt>git revision</dt><dd><code>{_e(git_revision())}</code></dd>"
                  f"<dt>pandas / matplotlib</dt><dd><code>{_e(pd.__version__)} / {_e(matplotlib.__version__)}</code></dd>"
                  "</dl></details>")
    return "\n".join(blocks)


# -- entry points -------------------------------------------------------------------------------------
def render_site(results: pd.DataFrame, site_dir: str | os.PathLike, *, targets: TargetOverrides | None = None,
                tuning: Iterable[dict[str, Any]] = (), title: str = DEFAULT_TITLE,
                bundle_link: str | None = None, max_page_bytes: int = MAX_PAGE_BYTES,
                claims_link: str | None = None, hypergradients_link: str | None = None) -> Path:
    """Write SITE_DIR/index.html for the result rows `results`; returns its path.

    When the inline plots would make index.html larger than `max_page_bytes`, each problem's
    plots go to a page of their own (SITE_DIR/problem-D-P.html, as self-contained as the index)
    and the index keeps the scores, profiles and every table, with a link to each problem's page.
    """
    if results is None or results.empty:
        raise UserError("no results to publish: the results table is empty")
    site_dir = Path(site_dir)
    site_dir.mkdir(parents=True, exist_ok=True)
    artefacts = list(tuning)
    rows = label_rows(results)
    runs = run_table(results, targets)
    entries = summary(runs)
    colors = plots.colors_for(entries["solver_label"])
    device_classes = sorted(entries["device_class"].unique(), key=lambda d: (not d.startswith("cpu"), d))
    all_scores = {axis: scores(entries, axis) for axis in ("time", "oracle")}
    all_profiles = {axis: performance_profiles(entries, axis) for axis in ("time", "oracle")}

    tabs, sections = [], []
    device_parts: list[tuple[int, str, str, list[str]]] = []
    problem_sections: list[tuple[int, str, str, str, str, str, str, str]] = []
    for device_index, device in enumerate(device_classes):
        section_id = f"device-{device_index}"
        tabs.append(f'<button role="tab" data-target="{section_id}" aria-selected="{"true" if device_index == 0 else "false"}">'
                    f"{_e(device_title(device))}</button>")
        device_entries = entries[entries["device_class"] == device]
        device_rows = rows[rows["device_class"] == device]
        device_scores = {axis: table[table["device_class"] == device] for axis, table in all_scores.items()}
        profiles = {axis: table[table["device_class"] == device] for axis, table in all_profiles.items()}
        problems = sorted(device_entries["problem_label"].unique())
        parts = [f'<h2>{_e(device_title(device))}</h2>',
                 f'<p class="meta">{_plural(len(problems), "problem")}, '
                 f'{_plural(device_entries["solver_label"].nunique(), "solver entry", "solver entries")}, '
                 f'{_plural(device_rows["run_id"].nunique(), "run")}.</p>',
                 _memory_note(device_rows),
                 '<div class="scores"><div><h3 class="scores-title">Scores</h3>',
                 _score_table(f"scores-{device_index}", device_scores),
                 '<p class="muted">Score = ∫₁⁴ ρ(τ) dτ / 3 (linear τ): 1 = fastest on every problem, '
                 "0 = never within 4× of the best. A missing or failed entry counts as not solved.</p></div>",
                 '<figure class="profile">' + plots.profile_svg(profiles, colors, "performance profile") +
                 "<figcaption>Performance profiles: fraction of problems solved within τ × the best median "
                 "time (left) and oracle calls (right).</figcaption></figure></div>"]
        for problem_index, problem in enumerate(problems):
            problem_entries = device_entries[device_entries["problem_label"] == problem].sort_values("rank")
            problem_rows = device_rows[device_rows["problem_label"] == problem]
            first = problem_entries.iloc[0]
            metric_column = f"objective_{first['target_metric']}"
            table_id = f"table-{device_index}-{problem_index}"
            tuned: dict[str, tuple[str, str]] = {}
            panels = []
            for _, entry in problem_entries.iterrows():
                match = match_tuning(entry, artefacts)
                if match:
                    anchor = f"tuning-{device_index}-{problem_index}-{slug(entry['solver_label'])}"
                    tuned[entry["solver_label"]] = (anchor, str(match[0]["tuning"].get("label")))
                    panels.append(_tuning_panel(anchor, entry["solver_label"], *match))
            problem_runs = runs[(runs["device_class"] == device) & (runs["problem_label"] == problem)]
            messages = {label: "; ".join(sorted({m for m in group["message"].dropna().astype(str) if m}))[:300]
                        for label, group in problem_runs.groupby("solver_label")}
            params = first["problem_params"]
            paths = mixed_paths(problem_entries)
            problem_id = f"problem-{device_index}-{problem_index}"
            head = (f'<section class="problem" id="{problem_id}" data-problem="{_e(problem)}">'
                    f"<h3>{_e(problem)}</h3>"
                    f'<p class="meta">target: <code>{_e(first["target_metric"])} ≤ {first["target_value"]:g}</code>'
                    f" · parameters <code>{_e(params)}</code></p>"
                    + _paths_note(paths)
                    + _leaderboard_table(table_id, problem, problem_entries, tuned, messages, bool(paths)))
            figures = ('<div class="plots">' + "".join(
                f'<figure class="convergence" data-axis="{axis}">'
                + plots.convergence_svg(problem_rows, metric_column, float(first["target_value"]), axis, colors,
                                        f"{problem} — vs {'time' if axis == 'time' else 'oracle calls'}")
                + f"<figcaption>Median over seeds and 20–80% band of {_e(first['target_metric'])}, "
                  f"vs {'time' if axis == 'time' else 'oracle calls'}.</figcaption></figure>"
                for axis in ("time", "oracle")) + "</div>")
            link = (f'<p class="meta"><a class="plots-link" href="{problem_id}.html">Convergence plots of '
                    f"{_e(problem)} on {_e(device_title(device))}</a></p>")
            problem_sections.append((len(parts), problem_id, problem, device, head, figures, link,
                                     "".join(panels) + "</section>"))
            parts.append("")  # filled below, once the page's size is known
        device_parts.append((device_index, device, section_id, parts))

    generated = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    split = sum(len(section[5]) for section in problem_sections) > max_page_bytes
    for position, problem_id, problem, device, head, figures, link, tail in problem_sections:
        index_part = head + (link if split else figures) + tail
        device_parts[int(problem_id.split("-")[1])][3][position] = index_part
        if split:  # the problem's own page: its table (the same id, sortable), plots and tuning panels
            atomic_write(site_dir / f"{problem_id}.html", PAGE.substitute(
                title=_e(f"{problem} — {device_title(device)} — {title}"), version=_e(__version__), css=CSS, js=JS,
                generated=_e(generated), download='<p class="meta"><a href="index.html">← the leaderboard</a></p>',
                summary="", tabs="", devices=head + figures + tail,
                provenance='<p><a href="index.html#provenance">The runs, machines and versions</a></p>').encode("utf-8"))
    written = {f"{section[1]}.html" for section in problem_sections} if split else set()
    for stale in site_dir.glob("problem-*-*.html"):  # of an earlier publish into this folder
        if stale.name not in written:
            stale.unlink()
    for device_index, device, section_id, parts in device_parts:
        hidden = "" if device_index == 0 else " hidden"
        sections.append(f'<section class="device" id="{section_id}" data-device="{_e(device)}" role="tabpanel"{hidden}>'
                        + "\n".join(parts) + "</section>")

    n_runs = rows["run_id"].nunique()
    download = (f'<p class="meta">Data: <a href="{_e(bundle_link)}">results bundle</a> '
                "(merged parquet + manifest with sha256 checksums).</p>") if bundle_link else ""
    if claims_link:  # the Claims page (site/claims.py), when the results came with a claims table
        download += (f'<p class="meta"><a id="claims-link" href="{_e(claims_link)}">Claims of the papers</a>: '
                     "verdicts and evidence.</p>")
    if hypergradients_link:  # site/hypergradients.py, when the results came with the hypergradient track
        download += (f'<p class="meta"><a id="hypergradients-link" href="{_e(hypergradients_link)}">Hypergradient '
                     "quality</a>: every estimator's error against its cost.</p>")
    page = PAGE.substitute(
        title=_e(title), version=_e(__version__), css=CSS, js=JS, generated=_e(generated), download=download,
        summary=_e(" · ".join([_plural(n_runs, "run"), _plural(entries["problem_label"].nunique(), "problem"),
                               _plural(entries["solver"].nunique(), "solver"),
                               _plural(len(device_classes), "device class", "device classes")])),
        tabs="".join(tabs), devices="\n".join(sections), provenance=_provenance_panel(rows))
    index = site_dir / "index.html"
    atomic_write(index, page.encode("utf-8"))
    return index


def publish(results_dir: str | os.PathLike | Iterable[str | os.PathLike], site_dir: str | os.PathLike, *,
            targets: TargetOverrides | None = None, tuning_files: Iterable[str | os.PathLike] = (),
            title: str = DEFAULT_TITLE) -> Path:
    """Render the leaderboard of RESULTS_DIR (a results directory, a bundle, or a list of them).

    Tuning artefacts are the files given plus those found at the top of each results directory
    and inside each bundle. When SITE_DIR holds a bundle (SITE_DIR/bundle/manifest.json), the
    page links to it. Returns the path of index.html.
    """
    from ..publishing import bundle_tuning_files, is_bundle, merge_sources
    from ..tuning import find_artefacts, read_artefact

    sources = [Path(results_dir)] if isinstance(results_dir, (str, os.PathLike)) else [Path(p) for p in results_dir]
    results = merge_sources(sources)
    if results.empty:
        raise UserError(f"no results in {', '.join(map(str, sources))}; run `benchopt-bilevel run` first")
    files = [Path(p) for p in tuning_files]
    for source in sources:
        files.extend(bundle_tuning_files(source) if is_bundle(source) else find_artefacts(source))
    artefacts, seen = [], set()
    for path in files:
        artefact = read_artefact(path)
        key = json.dumps(artefact, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            artefacts.append(artefact)
    site_dir = Path(site_dir)
    bundle_link = "bundle/manifest.json" if is_bundle(site_dir / "bundle") else None
    from .claims import publish_claims  # noqa: PLC0415
    from .hypergradients import publish_hypergradients  # noqa: PLC0415

    claims_link = publish_claims(sources, site_dir)
    hypergradients_link = publish_hypergradients(sources, site_dir)
    return render_site(results, site_dir, targets=targets, tuning=artefacts, title=title, bundle_link=bundle_link,
                       claims_link=claims_link, hypergradients_link=hypergradients_link)
