"""The `check` command (registered on the main `benchopt-bilevel` group): the conformance rules
of `conformance.py` on one solver, for authors of solvers kept outside the repository, as
scikit-learn's check_estimator is for estimators.

`benchopt-bilevel check PATH.py` loads the file as BENCHOPT_BILEVEL_SOLVERS_PATH would (so the
rules that run a cell find it by name) and checks every Solver subclass it defines;
`benchopt-bilevel check NAME` checks a registered solver. One line per rule; exit 0 when every
rule passes, 1 when one fails (each failure named with its fix), 2 on bad input.
"""
from __future__ import annotations

import inspect
import os
import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from .conformance import RULES, SLOW_RULES, Result
from .errors import UserError
from .solver import Solver

WIDTH = 80
PATH_VARIABLE = "BENCHOPT_BILEVEL_SOLVERS_PATH"


def _fit(line: str, width: int = WIDTH) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"


def rule_line(result: Result) -> str:
    """`✓ name  message`, cut to fit 80 columns."""
    return _fit(f"{'✓' if result.passed else '✗'} {result.name:<12} {result.message}")


def failure_report(name: str, results: list[Result]) -> list[str]:
    """The lines that name each failed rule of solver `name`, its full message and its fix."""
    failed = [r for r in results if not r.passed]
    lines = [f"{name} fails {len(failed)} of {len(results)} rules: {', '.join(r.name for r in failed)}"]
    for result in failed:
        lines += textwrap.wrap(f"{result.name}: {result.message}", WIDTH, initial_indent="  ",
                               subsequent_indent="    ")
        lines += textwrap.wrap(f"fix: {result.hint}", WIDTH, initial_indent="    ", subsequent_indent="    ")
    return lines


@contextmanager
def solver_file(path: Path) -> Iterator[list[type[Solver]]]:
    """The Solver classes the file at `path` defines, registered while the context lasts (as if its
    folder were in BENCHOPT_BILEVEL_SOLVERS_PATH, without loading the folder's other files)."""
    from .registry import solvers  # noqa: PLC0415

    if not path.is_file():
        raise UserError(f"no solver file {path}")
    if path.suffix != ".py":
        raise UserError(f"{path} is not a Python file (.py)")
    real = path.resolve()
    previous = os.environ.get(PATH_VARIABLE)
    listed = {Path(folder).resolve() for folder in filter(None, (previous or "").split(os.pathsep))}
    with tempfile.TemporaryDirectory() as folder:
        if real.parent not in listed:  # else the registry loads it already, and twice would clash
            # a link, not the folder: other files there are not the author's solvers to load
            (Path(folder) / path.name.lstrip("_")).symlink_to(real)
            os.environ[PATH_VARIABLE] = os.pathsep.join(filter(None, [folder, previous]))
        solvers.cache_clear()
        try:
            try:
                table = solvers()
            except Exception as error:  # noqa: BLE001 - the author's file: any error is theirs
                first = str(error).strip().splitlines()[0] if str(error).strip() else ""
                raise UserError(f"cannot load {path}: {type(error).__name__}: {first}") from None
            found = [cls for cls in table.values() if _defined_in(cls, real)]
            if not found:
                raise UserError(f"{path} defines no Solver subclass with a `name`")
            yield found
        finally:
            if previous is None:
                os.environ.pop(PATH_VARIABLE, None)
            else:
                os.environ[PATH_VARIABLE] = previous
            solvers.cache_clear()


def _defined_in(cls: type, real: Path) -> bool:
    try:
        return Path(inspect.getfile(cls)).resolve() == real
    except TypeError:  # a class without a source file
        return False


def _selected(only: tuple[str, ...], skip_slow: bool) -> list[str]:
    names = [name for name in RULES if (not only or name in only) and not (skip_slow and name in SLOW_RULES)]
    if not names:
        raise UserError("no rule left to run (--rule names only slow rules and --skip-slow skips them)")
    return names


def _check_one(cls: type[Solver], where: str, names: list[str]) -> bool:
    click.echo(_fit(f"{cls.name} ({where})"))
    results = []
    for name in names:  # one line as each rule finishes: the slow ones take seconds
        results.append(RULES[name](cls))
        click.echo(rule_line(results[-1]))
    if all(r.passed for r in results):
        skipped = [n for n in RULES if n not in names]
        summary = f"{cls.name} passes all {len(results)} rules" + (f" (not run: {', '.join(skipped)})" if skipped else "")
        for line in textwrap.wrap(summary, WIDTH, subsequent_indent="  "):
            click.echo(line)
        return True
    for line in failure_report(cls.name, results):
        click.echo(line)
    return False


@click.command("check")
@click.argument("target")
@click.option("--skip-slow", is_flag=True,
              help=f"Skip the slow rules ({', '.join(sorted(SLOW_RULES))}): seconds instead of a minute.")
@click.option("--rule", "only", multiple=True, type=click.Choice(list(RULES)),
              help="Run only this rule (repeatable).")
def check(target: str, skip_slow: bool, only: tuple[str, ...]) -> None:
    """Check a solver against the conformance rules the repository's solvers pass.

    TARGET is a solver file (PATH.py, e.g. kept outside the repository) or the name of a
    registered solver. Exit 0 when every rule passes, 1 when one fails, 2 on bad input.
    """
    ctx = click.get_current_context()
    try:
        names = _selected(only, skip_slow)
        if target.endswith(".py") or os.sep in target or Path(target).is_file():
            with solver_file(Path(target)) as classes:
                ok = [_check_one(cls, target, names) for cls in classes]
        else:
            from .registry import get_solver  # noqa: PLC0415

            ok = [_check_one(get_solver(target), "registered", names)]
    except UserError as error:
        click.echo(f"Error: {error}", err=True)
        ctx.exit(2)
    ctx.exit(0 if all(ok) else 1)
