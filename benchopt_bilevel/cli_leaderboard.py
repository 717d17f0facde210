"""Leaderboard commands: `publish`, `compare`, `score` (click commands, registered on the main
`benchopt-bilevel` group; `tune` is in cli_tune.py). User errors end in one line
(click.ClickException), no traceback.
"""
from __future__ import annotations

import io
import math
import shutil
import textwrap
from functools import wraps
from pathlib import Path
from typing import Callable

import click
import pandas as pd
from rich.console import Console
from rich.table import Table

from .errors import UserError


def user_errors(command: Callable) -> Callable:
    """Turn a UserError (or a missing file) raised by the command into a one-line ClickException."""

    @wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except UserError as error:
            raise click.ClickException(str(error)) from None
        except FileNotFoundError as error:
            raise click.ClickException(str(error)) from None

    return wrapper


def _targets(values: tuple[str, ...]) -> dict:
    from .scoring import parse_target

    return dict(parse_target(v) for v in values)


TARGET_OPTION = click.option("--target", "targets", multiple=True, metavar="PROBLEM[:METRIC]=VALUE",
                             help="Override a problem's documented target (repeatable), e.g. quadratic=1e-4.")


def _width() -> int:
    """The terminal's width (COLUMNS when set), 80 in a log or a pipe."""
    return shutil.get_terminal_size((80, 24)).columns


def _table(*columns: tuple[str, str]) -> Table:
    """A borderless rich table; columns are (header, justify). The first text column holds
    names: never wrapped, so a name is never cut across lines."""
    table = Table(box=None, pad_edge=False, padding=(0, 1), header_style="bold")
    for header, justify in columns:
        name = justify == "name"
        table.add_column(header, justify="left" if name else justify, no_wrap=name or justify == "right",
                         overflow="fold")
    return table


def _fill(text: str) -> str:
    """TEXT wrapped at the terminal's width between words (a name is never split), then indented."""
    return textwrap.fill(text, _width(), subsequent_indent="  ", break_long_words=False, break_on_hyphens=False)


def _echo(*renderables) -> None:
    """Render at the terminal's width (80 in CI logs) through click.echo, so tests capture it."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=_width(), color_system=None, highlight=False, markup=False,
                      emoji=False, soft_wrap=False)
    for renderable in renderables:
        console.print(renderable)
    click.echo(buffer.getvalue(), nl=False)


def _number(value) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.3g}"


# -- score -------------------------------------------------------------------------------------------
@click.command("score")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--axis", type=click.Choice(["time", "oracle"]), default="time", show_default=True,
              help="Time-to-target in seconds, or in oracle calls.")
@click.option("--tau-max", type=float, default=4.0, show_default=True, help="Upper end of the profile integral.")
@click.option("--per-problem", is_flag=True, help="Also print each problem's table (median, 20-80%, ratio).")
@TARGET_OPTION
@user_errors
def score(sources: tuple[Path, ...], axis: str, tau_max: float, per_problem: bool, targets: tuple[str, ...]) -> None:
    """Print the score of every solver: ∫₁⁴ ρ(τ) dτ / 3 of its performance profile.

    SOURCES are results directories or bundles (merged, each run once). Only runs of the same
    device class (device type and model) are compared.
    """
    from .publishing import merge_sources
    from .scoring import run_table, scores, summary

    if tau_max <= 1:
        raise UserError(f"--tau-max must be above 1, got {tau_max}")
    results = merge_sources(sources)
    if results.empty:
        raise UserError(f"no results in {', '.join(map(str, sources))}; run `benchopt-bilevel run` first")
    entries = summary(run_table(results, _targets(targets)))
    table = scores(entries, axis=axis, tau_max=tau_max)
    unit = "s" if axis == "time" else "calls"
    for device, group in table.groupby("device_class", sort=True):
        _echo(f"== {device} ({axis} axis, linear tau in [1, {tau_max:g}])")
        scores_table = _table(("#", "right"), ("solver", "name"), ("score", "right"), ("best", "right"),
                              ("solved", "right"), (f"<={tau_max:g}x", "right"))
        for position, row in enumerate(group.itertuples(index=False), start=1):
            scores_table.add_row(str(position), row.solver_label, f"{row.score:.3f}", str(row.n_best),
                                 f"{row.n_solved}/{row.n_problems}", str(row.n_within))
        _echo(scores_table, f"best: problems where it is the fastest; solved: problems whose target it reaches "
                            f"(median over seeds); <={tau_max:g}x: within {tau_max:g}x of the best.")
        if per_problem:
            rows = entries[entries["device_class"] == device]
            for problem, problem_rows in rows.groupby("problem_label", sort=True):
                _echo(f"-- {problem}")
                problem_table = _table(("rank", "right"), ("solver", "name"), (f"median {unit}", "right"),
                                       ("20%", "right"), ("80%", "right"), ("ratio", "right"),
                                       ("final", "right"), ("reached", "right"))
                for row in problem_rows.to_dict("records"):
                    problem_table.add_row(str(row["rank"]), row["solver_label"], *(_number(row[f"{axis}_{key}"])
                                          for key in ("median", "low", "high", "ratio")),
                                          _number(row["final_metric_median"]), f"{row['n_reached']}/{row['n_runs']}")
                _echo(problem_table)
            _echo(f"{axis} to target: median and 20-80% range over seeds; ratio: to the best median; "
                  "final: median final value of the target metric; reached: runs at the target.")
        click.echo("")


# -- compare -----------------------------------------------------------------------------------------
@click.command("compare")
@click.argument("base", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
@click.option("--fail-on-regression", "fail_ratio", type=float, default=None, metavar="RATIO",
              help="Exit with status 1 when an entry is more than RATIO times slower to the target "
                   "(or loses it), e.g. 1.5.")
@click.option("--axis", type=click.Choice(["time", "oracle"]), default="time", show_default=True)
@click.option("--ignore-device-name", is_flag=True,
              help="Compare by device type only (CI runners whose CPU model changes).")
@TARGET_OPTION
@user_errors
def compare(base: Path, new: Path, fail_ratio: float | None, axis: str, ignore_device_name: bool,
            targets: tuple[str, ...]) -> None:
    """Compare results NEW against BASE per (problem, solver): time-to-target and final metric.

    BASE and NEW are results directories or bundles. With --fail-on-regression RATIO the exit
    status is 1 when any entry regresses (see docs/leaderboard.md), 0 otherwise.
    """
    from .compare import compare as compare_results
    from .compare import regressions

    table = compare_results(base, new, targets=_targets(targets), axis=axis, ignore_device_name=ignore_device_name)
    if table.empty:
        raise UserError("nothing to compare: no (problem, solver) entry in either set")
    common = ~table["change"].isin(["only in base", "only in new"])
    if not common.any():
        click.echo("warning: no (device, problem, solver) entry is in both sets"
                   + ("" if ignore_device_name else "; try --ignore-device-name"), err=True)
    _echo_comparison(table, axis)
    if fail_ratio is not None:
        bad = regressions(table, fail_ratio)
        if not bad.empty:
            for _, row in bad.iterrows():
                heading = f"REGRESSION {row['device_class']} / {row['problem_label']} / {row['solver_label']}:"
                click.echo(_fill(heading) + "\n  "
                           f"{axis} to target {_number(row['base_to_target'])} -> {_number(row['new_to_target'])} "
                           f"(x{_number(row['to_target_ratio'])}), final metric {_number(row['base_final'])} -> "
                           f"{_number(row['new_final'])}", err=True)
            click.echo(f"{len(bad)} regression(s) beyond x{fail_ratio:g}", err=True)
            raise SystemExit(1)
        click.echo(f"no regression beyond x{fail_ratio:g}", err=True)


def _echo_comparison(table: pd.DataFrame, axis: str) -> None:
    """One block per device class and problem, one line per solver: fits 80 columns."""
    for (device, problem), group in table.groupby(["device_class", "problem_label"], sort=True):
        _echo(f"== {device} / {problem}")
        lines = _table(("solver", "name"), ("base", "right"), ("new", "right"), ("x", "right"),
                       ("final x", "right"), ("reached", "right"), ("change", "name"))
        for row in group.to_dict("records"):
            reached = f"{row['base_reached'] or '-'}>{row['new_reached'] or '-'}"
            lines.add_row(row["solver_label"], _number(row["base_to_target"]), _number(row["new_to_target"]),
                          _number(row["to_target_ratio"]), _number(row["final_ratio"]), reached, row["change"])
        _echo(lines)
    _echo(f"base, new: {axis} to target (median over seeds); x: new/base; final x: new/base of the median "
          "final value of the target metric; reached: runs at the target, base>new.")


# -- publish -----------------------------------------------------------------------------------------
@click.command("publish")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--site", "site_dir", type=click.Path(path_type=Path), required=True,
              help="Folder to write the static site to (index.html, bundle/).")
@click.option("--bundle", "bundle_dir", type=click.Path(path_type=Path), default=None,
              help="Where to write the results bundle [default: SITE/bundle].")
@click.option("--tuning", "tuning_files", multiple=True, type=click.Path(path_type=Path),
              help="Tuning artefact(s) to show beside the results (repeatable); *.yaml artefacts at the "
                   "top of each results directory are found automatically.")
@click.option("--title", default=None, help="Title of the page.")
@click.option("--git-branch", default=None, metavar="NAME",
              help="Also commit the site and the bundle to branch NAME of --git-repo (e.g. gh-pages).")
@click.option("--git-repo", type=click.Path(path_type=Path), default=Path("."), show_default=True,
              help="Local git repository for --git-branch; its checkout is never touched.")
@click.option("--message", default=None, help="Commit message for --git-branch.")
@TARGET_OPTION
@user_errors
def publish(sources: tuple[Path, ...], site_dir: Path, bundle_dir: Path | None, tuning_files: tuple[Path, ...],
            title: str | None, git_branch: str | None, git_repo: Path, message: str | None,
            targets: tuple[str, ...]) -> None:
    """Bundle SOURCES (results directories or bundles, merged) and render the static leaderboard.

    Writes SITE/bundle (merged parquet + manifest with sha256 checksums) and SITE/index.html, a
    page that works offline (a large leaderboard's plots go to one page per problem beside it).
    With --git-branch, commits both to a branch.
    """
    from . import site as site_module
    from .publishing import bundle, publish_to_git_branch
    from .tuning import find_artefacts, read_artefact

    for path in tuning_files:
        read_artefact(path)  # a clear error before any work
    artefacts = list(tuning_files)
    for source in sources:
        if source.is_dir() and not (source / "manifest.json").is_file():
            artefacts.extend(find_artefacts(source))
    target_overrides = _targets(targets)
    bundle_dir = bundle_dir or site_dir / "bundle"
    manifest = bundle(sources, bundle_dir, artefacts)
    click.echo(f"bundle: {bundle_dir} ({manifest['runs']} runs, {manifest['rows']} rows)", err=True)
    in_site = bundle_dir.resolve() == (site_dir / "bundle").resolve()
    index = site_module.publish(bundle_dir, site_dir, targets=target_overrides,
                                title=title or site_module.DEFAULT_TITLE)
    click.echo(f"site: {index}", err=True)
    if git_branch:
        paths = {"": site_dir} if in_site else {"": site_dir, "bundle": bundle_dir}
        commit = publish_to_git_branch(paths, git_repo, git_branch,
                                       message or f"Publish leaderboard: {manifest['runs']} runs")
        click.echo(f"committed {commit[:12]} to branch {git_branch} of {git_repo}", err=True)
    click.echo(str(index))


COMMANDS = [publish, compare, score]
