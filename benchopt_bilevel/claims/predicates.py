"""Pieces of claims' predicates: pure functions of the result rows (results.py's schema) of one
claim's runs, with a `claim_solver` column naming the solver specification of each run.

Per-run figures (a final value, a slope, a time to target) are computed run by run, then
summarized over seeds as a median and a [min, max] spread (`spread`). Each test returns an
`Evidence` whose verdict is `holds`, `fails` or `inconclusive` (a run that errored or timed out,
or a column the runs did not record: the experiment says nothing); `all_of` combines them.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from . import Evidence

SECOND_ORDER = ("hvp", "cross")  # the oracle kinds a first-order method never calls
BROKEN = ("error", "timeout", "skipped")  # runs that measured nothing about the method


# -- selecting and summarizing -------------------------------------------------------------------
def runs_of(rows: pd.DataFrame, spec: str) -> dict[int, pd.DataFrame]:
    """Each run of solver specification SPEC by seed, its rows in step order."""
    mine = rows[rows["claim_solver"] == spec]
    return {int(seed): run.sort_values("step") for seed, run in mine.groupby("seed", sort=True)}


def spread(values: Iterable[float]) -> dict[str, float]:
    """Median and [min, max] over seeds (NaN for none)."""
    values = np.asarray(list(values), dtype=float)
    if values.size == 0:
        return {"median": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    return {"median": float(np.median(values)), "min": float(np.min(values)), "max": float(np.max(values)),
            "n": int(values.size)}


def fmt(value: Any) -> str:
    """A figure in 3 significant digits ('-' for NaN)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(value):
        return "-"
    return "inf" if math.isinf(value) else f"{value:.3g}"


def describe(name: str, summary: dict[str, float]) -> str:
    """'NAME median [min, max]' of a `spread`."""
    return f"{name} {fmt(summary['median'])} [{fmt(summary['min'])}, {fmt(summary['max'])}]"


def broken_runs(rows: pd.DataFrame, specs: Sequence[str] | None = None) -> list[str]:
    """'SPEC seed=S: status: message' of each run of SPECS that errored, timed out or was skipped."""
    found = []
    for spec in specs if specs is not None else sorted(rows["claim_solver"].unique()):
        runs = runs_of(rows, spec)
        if not runs:
            found.append(f"{spec}: no run")
        for seed, run in runs.items():
            final = run.iloc[-1]
            if final["status"] in BROKEN:
                found.append(f"{spec} seed={seed}: {final['status']}: {str(final.get('message') or '')[:160]}")
    return found


def inconclusive_if_broken(rows: pd.DataFrame, specs: Sequence[str], needs: Sequence[str] = ()) -> Evidence | None:
    """An inconclusive Evidence naming the broken runs of SPECS, or the first column of NEEDS
    that no row recorded (`inconclusive_if_unrecorded`); None when every run measured."""
    broken = broken_runs(rows, specs)
    if broken:
        return Evidence("inconclusive", f"{len(broken)} run(s) measured nothing: " + "; ".join(broken[:3]),
                        {"broken_runs": broken})
    return next((e for e in (inconclusive_if_unrecorded(rows, c) for c in needs) if e is not None), None)


def per_run(rows: pd.DataFrame, spec: str, figure: Callable[[pd.DataFrame], float]) -> list[float]:
    """FIGURE of each run of SPEC, in seed order."""
    return [float(figure(run)) for run in runs_of(rows, spec).values()]


def final_value(column: str) -> Callable[[pd.DataFrame], float]:
    """A run's last finite value of COLUMN (+inf when it has none: diverged or never measured)."""
    def figure(run: pd.DataFrame) -> float:
        values = run[column].to_numpy(dtype=float) if column in run else np.array([])
        finite = values[np.isfinite(values)]
        return float(finite[-1]) if finite.size else math.inf
    return figure


def best_value(column: str) -> Callable[[pd.DataFrame], float]:
    """A run's lowest finite value of COLUMN (+inf when none)."""
    def figure(run: pd.DataFrame) -> float:
        values = run[column].to_numpy(dtype=float) if column in run else np.array([])
        finite = values[np.isfinite(values)]
        return float(finite.min()) if finite.size else math.inf
    return figure


def first_reach(column: str, target: float, axis: str = "oracle_total") -> Callable[[pd.DataFrame], float]:
    """AXIS (time, step, oracle_total) at a run's first row whose COLUMN ≤ TARGET; +inf if never."""
    def figure(run: pd.DataFrame) -> float:
        hit = run[run[column].to_numpy(dtype=float) <= target] if column in run else run.iloc[:0]
        return float(hit[axis].iloc[0]) if len(hit) else math.inf
    return figure


def log_slope(column: str, start: float, end: float, x: str = "step") -> Callable[[pd.DataFrame], float]:
    """Least-squares slope of log10(COLUMN) against X over the run's rows with START ≤ X ≤ END
    (decades per unit of X; NaN with fewer than 3 positive finite points in the window)."""
    def figure(run: pd.DataFrame) -> float:
        window = run[(run[x] >= start) & (run[x] <= end)]
        values = window[column].to_numpy(dtype=float) if column in window else np.array([])
        keep = np.isfinite(values) & (values > 0)
        if keep.sum() < 3:
            return math.nan
        return float(np.polyfit(window[x].to_numpy(dtype=float)[keep], np.log10(values[keep]), 1)[0])
    return figure


def second_order_calls(run: pd.DataFrame) -> float:
    """Second-order oracle calls (HVPs and cross products, mini-batch and full) of a run, at its end."""
    final = run.iloc[-1]
    return float(sum(float(final.get(f"oracle_{kind}{suffix}", 0.0) or 0.0)
                     for kind in SECOND_ORDER for suffix in ("", "_full")))


# -- tests -----------------------------------------------------------------------------------------
def all_of(*evidence: Evidence) -> Evidence:
    """Holds when every part holds, fails when one fails, inconclusive otherwise; the summaries
    and figures of the parts joined."""
    verdicts = {e.verdict for e in evidence}
    verdict = "fails" if "fails" in verdicts else "inconclusive" if "inconclusive" in verdicts else "holds"
    figures: dict[str, Any] = {}
    for part in evidence:
        figures.update(part.figures)
    return Evidence(verdict, "; ".join(e.summary for e in evidence), figures)


def below(rows: pd.DataFrame, spec: str, figure: Callable[[pd.DataFrame], float], limit: float, what: str,
          all_runs: bool = False) -> Evidence:
    """Holds when the median over seeds of FIGURE (every run's, with ALL_RUNS) is ≤ LIMIT."""
    values = per_run(rows, spec, figure)
    summary = spread(values)
    if not values or any(math.isnan(v) for v in values):
        return Evidence("inconclusive", f"{spec}: {what} not measured", {f"{spec} {what}": summary})
    ok = (summary["max"] if all_runs else summary["median"]) <= limit
    text = f"{spec}: {describe(what, summary)} {'≤' if ok else '>'} {fmt(limit)}"
    return Evidence("holds" if ok else "fails", text, {f"{spec} {what}": summary})


def above(rows: pd.DataFrame, spec: str, figure: Callable[[pd.DataFrame], float], limit: float, what: str,
          all_runs: bool = False) -> Evidence:
    """Holds when the median over seeds of FIGURE (every run's, with ALL_RUNS) is ≥ LIMIT."""
    values = per_run(rows, spec, figure)
    summary = spread(values)
    if not values or any(math.isnan(v) for v in values):
        return Evidence("inconclusive", f"{spec}: {what} not measured", {f"{spec} {what}": summary})
    ok = (summary["min"] if all_runs else summary["median"]) >= limit
    text = f"{spec}: {describe(what, summary)} {'≥' if ok else '<'} {fmt(limit)}"
    return Evidence("holds" if ok else "fails", text, {f"{spec} {what}": summary})


def ratio_of_medians(rows: pd.DataFrame, better: str, worse: str, figure: Callable[[pd.DataFrame], float],
                     what: str, margin: float = 1.0, strict: bool = False) -> Evidence:
    """Holds when median(FIGURE of BETTER) · MARGIN ≤ median(FIGURE of WORSE) (lower is better):
    BETTER is at least MARGIN times lower (< with STRICT: a tie is no evidence of "fewer"). The
    ratio worse / better is in the figures."""
    low, high = spread(per_run(rows, better, figure)), spread(per_run(rows, worse, figure))
    figures = {f"{better} {what}": low, f"{worse} {what}": high}
    if math.isnan(low["median"]) or math.isnan(high["median"]):
        return Evidence("inconclusive", f"{what} of {better} or {worse} not measured", figures)
    ratio = high["median"] / low["median"] if low["median"] > 0 else math.inf
    figures[f"{worse}/{better} {what}"] = ratio
    ok = low["median"] * margin < high["median"] if strict else low["median"] * margin <= high["median"]
    sign = (">" if ok else "≤") if strict else ("≥" if ok else "<")
    text = f"{describe(f'{better} {what}', low)} vs {describe(worse, high)}: ratio {fmt(ratio)} {sign} {fmt(margin)}"
    return Evidence("holds" if ok else "fails", text, figures)


def ranking(rows: pd.DataFrame, specs: Sequence[str], figure: Callable[[pd.DataFrame], float],
            what: str) -> Evidence:
    """Holds when the medians of FIGURE over seeds are in the order of SPECS (strictly increasing)."""
    summaries = {spec: spread(per_run(rows, spec, figure)) for spec in specs}
    medians = [summaries[spec]["median"] for spec in specs]
    figures = {f"{spec} {what}": summaries[spec] for spec in specs}
    if any(math.isnan(m) for m in medians):
        return Evidence("inconclusive", f"{what} not measured for every solver", figures)
    ok = all(a < b for a, b in zip(medians, medians[1:]))
    order = " < ".join(describe(spec, summaries[spec]) for spec in specs)
    return Evidence("holds" if ok else "fails", f"{what}: {order}" + ("" if ok else " (order not as claimed)"),
                    figures)


def no_second_order(rows: pd.DataFrame, spec: str) -> Evidence:
    """Holds when no run of SPEC called an HVP or a cross product (the oracle call columns)."""
    calls = per_run(rows, spec, second_order_calls)
    summary = spread(calls)
    if not calls:
        return Evidence("inconclusive", f"{spec}: no run", {})
    ok = max(calls) == 0
    return Evidence("holds" if ok else "fails", f"{spec}: {fmt(max(calls))} second-order calls",
                    {f"{spec} second-order calls": summary})


def reaches_target(rows: pd.DataFrame, spec: str, column: str, target: float, min_fraction: float = 0.5,
                   axis: str = "step") -> Evidence:
    """Holds when at least MIN_FRACTION of SPEC's runs reach COLUMN ≤ TARGET; the median AXIS at
    the first such row and the median best value are in the figures."""
    reached = per_run(rows, spec, first_reach(column, target, axis))
    best = spread(per_run(rows, spec, best_value(column)))
    if not reached:
        return Evidence("inconclusive", f"{spec}: no run", {})
    fraction = sum(math.isfinite(r) for r in reached) / len(reached)
    figures = {f"{spec} {axis} to target": spread(reached), f"{spec} best {column}": best,
               f"{spec} reached": fraction}
    ok = fraction >= min_fraction
    text = (f"{spec}: {column} ≤ {fmt(target)} in {sum(math.isfinite(r) for r in reached)}/{len(reached)} runs "
            f"(median {axis} {fmt(spread(reached)['median'])}, best {fmt(best['median'])})")
    return Evidence("holds" if ok else "fails", text, figures)


def linear_fit(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Slope and R² of the least-squares line through (x, y) (R² = 1 for a constant y)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    residual = float(np.sum((y - (slope * x + intercept)) ** 2))
    total = float(np.sum((y - y.mean()) ** 2))
    return float(slope), 1.0 - residual / total if total > 0 else 1.0


def growth(rows: pd.DataFrame, specs: dict[str, float], figure: Callable[[pd.DataFrame], float]) -> dict[str, Any]:
    """The median over seeds of FIGURE for each spec of SPECS (spec -> its x, e.g. inner steps),
    and the slope and R² of those medians against x."""
    medians = {spec: spread(per_run(rows, spec, figure))["median"] for spec in specs}
    xs, ys = [specs[s] for s in specs], [medians[s] for s in specs]
    if len(xs) < 2 or any(math.isnan(v) for v in ys):
        return {"medians": medians, "slope": math.nan, "r2": math.nan}
    slope, r2 = linear_fit(xs, ys)
    return {"medians": medians, "slope": slope, "r2": r2}


def memory_peak(run: pd.DataFrame) -> float:
    """A run's peak memory above its start in bytes (NaN when not measured)."""
    peak = float(run["peak_memory_bytes"].max()) if "peak_memory_bytes" in run else -1.0
    return peak if peak >= 0 else math.nan


def falls_with(rows: pd.DataFrame, specs: dict[str, float], figure: Callable[[pd.DataFrame], float],
               what: str) -> Evidence:
    """Holds when the medians over seeds of FIGURE fall strictly with every increase of the
    parameter of SPECS (spec -> its parameter, listed in increasing order)."""
    summaries = {spec: spread(per_run(rows, spec, figure)) for spec in specs}
    medians = [summaries[spec]["median"] for spec in specs]
    figures = {f"{spec} {what}": summaries[spec] for spec in specs}
    if not medians or any(math.isnan(m) for m in medians):
        return Evidence("inconclusive", f"{what} not measured for every solver", figures)
    ok = all(b < a for a, b in zip(medians, medians[1:]))
    text = (f"median {what} at " + ", ".join(f"{fmt(x)}: {fmt(m)}" for x, m in zip(specs.values(), medians))
            + ("" if ok else " (not falling at every step)"))
    return Evidence("holds" if ok else "fails", text, figures)


def memory_grows(rows: pd.DataFrame, specs: dict[str, float], min_slope: float, min_r2: float) -> Evidence:
    """Holds when the line through the median peak memory (`memory_peak`) of SPECS against their
    parameter rises at least MIN_SLOPE bytes per unit with R² ≥ MIN_R2; inconclusive where the
    runs did not measure memory."""
    fit = growth(rows, specs, memory_peak)
    figures = {**{f"{spec} peak bytes": spread(per_run(rows, spec, memory_peak)) for spec in specs},
               "peak slope (bytes per unit)": fit["slope"], "peak r2": fit["r2"]}
    if math.isnan(fit["slope"]):
        return Evidence("inconclusive", "peak memory not measured on this platform", figures)
    ok = fit["slope"] >= min_slope and fit["r2"] >= min_r2
    text = ("median peak memory " + ", ".join(f"{fmt(x)}: {fmt(m / 2 ** 20)}" for x, m in
                                               zip(specs.values(), fit["medians"].values()))
            + f" MiB; slope {fmt(fit['slope'])} B per unit (≥ {fmt(min_slope)}), R² {fmt(fit['r2'])} (≥ {fmt(min_r2)})")
    return Evidence("holds" if ok else "fails", text, figures)


def lower_median(rows: pd.DataFrame, better: str, worse: str, figure: Callable[[pd.DataFrame], float],
                 what: str) -> Evidence:
    """Holds when BETTER's median over seeds of FIGURE is strictly lower than WORSE's (a tie
    fails); the summary and the figures say whether the [min, max] spreads overlap."""
    evidence = ratio_of_medians(rows, better, worse, figure, what, strict=True)
    if evidence.verdict == "inconclusive":
        return evidence
    low, high = evidence.figures[f"{better} {what}"], evidence.figures[f"{worse} {what}"]
    overlap = bool(low["max"] >= high["min"] and high["max"] >= low["min"])
    return Evidence(evidence.verdict, evidence.summary + ("; spreads overlap" if overlap else "; spreads apart"),
                    {**evidence.figures, "spreads overlap": overlap})


def inconclusive_if_unrecorded(rows: pd.DataFrame, column: str) -> Evidence | None:
    """An inconclusive Evidence when no row recorded COLUMN (absent, or NaN everywhere: e.g. a
    problem without an exact hypergradient), else None. `final_value` alone would read such runs
    as +inf, i.e. as diverged."""
    if column not in rows or rows[column].isna().all():
        return Evidence("inconclusive", f"{column} was not recorded")
    return None
