"""The command line: `benchopt-bilevel list | run | show | plot | datasets | ...`.

Anything a user can get wrong ends in one line on stderr and exit code 1 (2 for usage errors,
as click does), never a traceback.
"""
from __future__ import annotations

import dataclasses
import sys
import warnings
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import __version__
from .benchmark import (DEFAULT_MAX_TIME, DEFAULT_PROBLEMS, DEFAULT_SOLVERS, expand, run_benchmark, spec_notes,
                        validate_cells)
from .cli_execution import Execution, execution_options
from .config import BenchmarkSpec, load_config, parse_seeds, run_config
from .errors import UserError
from .params import provenance
from .registry import problems, solvers

console = Console()
RETIRED_COMPILE_BACKEND = ("--compile-backend is gone: --compile is torch.compile, and the aot backend was replaced "
                           "by the fast path: use --fast (or --path fast); docs/compile.md")


class _Group(click.Group):
    """Turns the errors a user can cause into one clear line."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as error:
            raise click.ClickException(str(error)) from None
        except KeyboardInterrupt:
            raise click.ClickException("interrupted; every finished run is already saved") from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="benchopt-bilevel")
def main() -> None:
    """benchopt-bilevel: a benchmark suite for bilevel optimization."""


def _defaults(params_cls) -> Text:
    """One `name=default` per line (never split across lines), then where the default comes from."""
    sources = provenance(params_cls)
    text = Text()
    for f in dataclasses.fields(params_cls):
        if f.default is dataclasses.MISSING:
            continue
        text.append(("\n" if text else "") + f"{f.name}={f.default!r}")
        if sources.get(f.name) is not None:
            text.append(f" ({sources[f.name]})", style="dim")
    return text


def _reference_line(cls) -> str:
    """'SOBA[step_size=step_inner, outer_ratio]': the reference's name and parameter names -> ours."""
    from .reference_specs import declared_reference  # noqa: PLC0415

    name, params = declared_reference(cls)
    names = [k if k == v else f"{k}={v}" for k, v in params.items()]
    return f"{name}[{', '.join(names)}]" if names else str(name)


@main.command("list")
@click.argument("what", type=click.Choice(["problems", "solvers", "datasets"]), default="solvers")
def list_command(what: str) -> None:
    """List problems, solvers or datasets with their parameters."""
    # Three columns fit 80: the name never wraps, the reference goes under the description.
    table = Table(show_lines=True, expand=False)
    table.add_column("name", no_wrap=True)
    table.add_column("description" + (" and reference" if what == "solvers" else ""), overflow="fold")
    if what == "datasets":
        from .data.registry import list_datasets  # noqa: PLC0415 - optional engine part

        for info in list_datasets():
            table.add_row(Text(str(getattr(info, "NAME", getattr(info, "name", str(info))))),
                          Text(str(getattr(info, "DESCRIPTION", getattr(info, "description", "")))))
        console.print(table)
        return
    table.add_column("defaults", overflow="fold")
    if what == "solvers":
        for name, cls in solvers().items():
            kind = "stochastic" if cls.stochastic else "deterministic"
            description = Text(f"{cls.description} [{cls.family}; {kind}]\n")
            description.append(str(cls.reference), style="dim")
            if cls.__dict__.get("reference_name"):
                description.append(f"\nreference benchmark: {_reference_line(cls)}", style="dim")
            table.add_row(Text(name), description, _defaults(cls.Params))
    else:
        for name, cls in problems().items():
            table.add_row(Text(name), Text(str(cls.description)), _defaults(cls.Params))
    console.print(table)


@main.command()
@click.option("-p", "--problem", "problem_specs", multiple=True, metavar="SPEC",
              help="problem[key=value,...]; repeatable. Default: the embedded quadratic.")
@click.option("-s", "--solver", "solver_specs", multiple=True, metavar="SPEC",
              help="solver[key=value,...]; repeatable; 'all' for every solver. Default: one per family. "
                   "Names in any case; the reference benchmark's specs work too, e.g. "
                   "'SOBA[step_size=0.03125,outer_ratio=0.01,random_state=[1, 2]]' (its random_state gives "
                   "the seeds, its batch_size goes on the problem; docs/solvers.md).")
@click.option("--seeds", default=None, metavar="LIST", help="e.g. 0,1,2 or 0-4 (default 0).")
@click.option("--max-time", type=float, default=None, help=f"seconds of steps per run (default {DEFAULT_MAX_TIME}).")
@click.option("--max-steps", type=int, default=None, help="steps per run (default: no limit).")
@click.option("--n-evals", type=int, default=None, help="evaluation points per run, log-spaced (default 25).")
@click.option("--device", default=None, help="cpu or cuda (default cpu).")
@click.option("--dtype", default=None, type=click.Choice(["float32", "float64"]), help="default float32.")
@click.option("--compile/--no-compile", "compile_", default=None,
              help="torch.compile the solver's step (compile time in its own column).")
@click.option("--chunk-steps", type=int, default=None, help="most steps between two clock reads (default 32).")
@click.option("--compile-steps", type=int, default=None,
              help="with --compile: steps unrolled into one compiled graph (default 1; 8 to 32 for "
                   "problems whose step is tiny, at the price of a longer compilation).")
# Retired: kept hidden so that a command line that still passes it gets the way forward.
@click.option("--compile-backend", "compile_backend", default=None, hidden=True)
@click.option("--path", "step_path", type=click.Choice(["eager", "fast", "auto"]), default=None,
              help="how steps run without --compile: eager (default), fast (CPU: n steps per call of a "
                   "library built once and kept in the build cache, `benchopt-bilevel cache`), or auto "
                   "(fast when an eager step takes under 1 ms). docs/compile.md.")
@click.option("--fast", "fast_flag", is_flag=True, default=False, help="same as --path fast.")
@click.option("--target", type=float, default=None,
              help="target value for --stop-at-target (show, score and the leaderboard keep the problem's documented target; `score --target` overrides theirs).")
@click.option("--stop-at-target", is_flag=True, default=None, help="stop a run when it reaches the target.")
@click.option("-o", "--output", default="results", show_default=True, type=click.Path(file_okay=False),
              help="results directory (one parquet file per run).")
@click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False),
              help="YAML run configuration (e.g. a tuning artefact); options given here override it.")
@execution_options
def run(problem_specs, solver_specs, seeds, max_time, max_steps, n_evals, device, dtype, compile_, chunk_steps,
        compile_steps, compile_backend, step_path, fast_flag, target, stop_at_target, output, config_path,
        execution: Execution) -> None:
    """Run a benchmark; with no problem and no solver, the embedded default.

    Runs already complete in the output directory are reused (--force reruns them), so an
    interrupted benchmark resumes where it stopped."""
    if compile_backend is not None:
        raise UserError(RETIRED_COMPILE_BACKEND)
    config = load_config(config_path) if config_path else {}
    if fast_flag and step_path not in (None, "fast"):
        raise UserError(f"--fast and --path {step_path} disagree: give one")
    step_path = "fast" if fast_flag else step_path
    cli_values = {"step_path": step_path, "max_time": max_time, "max_steps": max_steps, "n_evals": n_evals, "device": device,
                  "dtype": dtype, "compile": compile_, "chunk_steps": chunk_steps, "compile_steps": compile_steps,
                  "target": target,
                  "stop_at_target": stop_at_target}
    values = {**{"max_time": DEFAULT_MAX_TIME}, **config, **{k: v for k, v in cli_values.items() if v is not None}}
    spec = BenchmarkSpec(
        problems=list(problem_specs) or config.get("problems") or DEFAULT_PROBLEMS,
        solvers=list(solver_specs) or config.get("solvers") or DEFAULT_SOLVERS,
        seeds=parse_seeds(seeds) if seeds else config.get("seeds") or [0],
        run=run_config(values),
    )
    if "all" in spec.solvers:
        spec.solvers = [s for s in spec.solvers if s != "all"] + [s for s in solvers() if s not in spec.solvers]
    cells = expand(spec)
    validate_cells(cells, spec.run)
    err = Console(stderr=True, soft_wrap=True)
    for note in spec_notes(spec):  # what a reference-benchmark spec's translation ignored or set
        err.print(note, highlight=False, markup=False)
    # No seeds factor: a reference spec's random_state sets its own runs' seeds.
    err.print(f"{len(cells)} runs: {len(spec.problems)} problem(s) × {len(spec.solvers)} solver spec(s), "
              f"up to {spec.run.max_time:g} s of steps each → {output}/", highlight=False)
    results = run_benchmark(cells, spec.run, output, console=err, executor=execution.make_executor(spec.run.max_time, spec.run.step_path),
                            force=execution.force)
    _print_summary(results)
    console.print(f"Results in {output}/ — `benchopt-bilevel show {output}`, `benchopt-bilevel plot {output}`")


def _load(directory: str):
    from .results import load_results  # noqa: PLC0415

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            results = load_results(directory)
        except FileNotFoundError as error:
            raise UserError(str(error)) from None
    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)
    if results.empty:
        raise UserError(f"no result files in {directory}")
    return results


def _print_summary(results) -> None:
    from .scoring import run_table, summary  # noqa: PLC0415
    from .summary import failure_notes, summary_view  # noqa: PLC0415

    entries = summary(run_table(results, strict=False))
    console.print(summary_view(entries, console.width))
    for note in failure_notes(entries):
        console.print(note, highlight=False, markup=False)


@main.command()
@click.argument("directory", type=click.Path())
def show(directory: str) -> None:
    """Summary table of a results directory."""
    _print_summary(_load(directory))


@main.command()
@click.argument("directory", type=click.Path())
@click.option("-o", "--output", default=None, type=click.Path(file_okay=False),
              help="where to write the figures (default DIRECTORY/plots).")
@click.option("--format", "fmt", type=click.Choice(["png", "svg", "pdf"]), default="png", show_default=True)
def plot(directory: str, output: str | None, fmt: str) -> None:
    """Convergence curves (metric vs time and vs oracle calls), one figure per problem."""
    from .plotting import plot_results  # noqa: PLC0415 - matplotlib is slow to import

    paths = plot_results(_load(directory), Path(output or Path(directory) / "plots"), fmt)
    for path in paths:
        console.print(f"wrote {path}")



@main.command()
@click.option("-p", "--problem", "problem_spec", default=None, metavar="SPEC",
              help="problem[key=value,...] (default: the embedded quadratic).")
@click.option("-s", "--solver", "solver_specs", multiple=True, metavar="SPEC",
              help="solver[key=value,...]; repeatable; 'all' (default) for every solver.")
@click.option("--steps", type=click.IntRange(min=1), default=50, show_default=True, help="timed steps per solver.")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--dtype", default="float32", show_default=True, type=click.Choice(["float32", "float64"]))
def profile(problem_spec, solver_specs, steps, device, dtype) -> None:
    """Per-step time of each solver and its oracle-normalized cost (time per step over the
    time of the oracle calls it declares; ~1 means the step is its oracle calls)."""
    from .profiling import profile_solvers  # noqa: PLC0415

    problem_spec = problem_spec or DEFAULT_PROBLEMS[0]
    specs = [s for s in solver_specs if s != "all"]
    if not solver_specs or "all" in solver_specs:
        specs += [s for s in solvers() if s not in specs]
    profiles = profile_solvers(problem_spec, specs, device, dtype, steps)
    table = Table(title=f"per-step cost on {problem_spec} ({device}, {dtype}, eager)")
    for column in ("solver", "ms/step", "oracle ms", "normalized", "declared calls per step"):
        table.add_column(column, justify="left" if column in ("solver", "declared calls per step") else "right")
    for spec, result in zip(specs, profiles):
        if result.skipped:
            table.add_row(spec, "—", "—", "—", f"skipped: {result.skipped}")
            continue
        calls = ", ".join(f"{k} {v:g}" for k, v in result.declared.items())
        table.add_row(spec, f"{result.ms_per_step:.3f}", f"{result.modeled_ms:.3f}", f"{result.normalized:.2f}", calls)
    console.print(table)


@main.command()
@click.option("--clear", is_flag=True, help="remove every entry.")
@click.option("--clear-inductor", is_flag=True,
              help="empty Inductor's working cache too (while no build runs; the next build redoes its headers).")
def cache(clear: bool, clear_inductor: bool) -> None:
    """The build cache of the fast path: its path, size and entry count (one entry per solver
    structure × problem × dtype; set the place with $BENCHOPT_BILEVEL_CACHE), the size of
    Inductor's working cache ($TORCHINDUCTOR_CACHE_DIR), which builds fill as well, and whether
    the native kernels built (native.py)."""
    from . import native, row_kernels  # noqa: PLC0415
    from .build_cache import cache_stats, clear_cache, clear_inductor_cache, inductor_cache_stats  # noqa: PLC0415

    if clear:
        removed = clear_cache()
        console.print(f"removed {removed} build(s)", highlight=False)
    if clear_inductor:
        freed = clear_inductor_cache()
        console.print(f"freed {freed / 2**20:.1f} MiB of Inductor's working cache", highlight=False)
    stats, inductor = cache_stats(), inductor_cache_stats()
    console.print(f"{stats['path']}\n{stats['entries']} build(s), {stats['bytes'] / 2**20:.1f} MiB",
                  highlight=False, soft_wrap=True)
    console.print(f"Inductor's working cache: {inductor['path']}\n{inductor['bytes'] / 2**20:.1f} MiB, of which "
                  f"{inductor['headers']} precompiled header(s) {inductor['header_bytes'] / 2**20:.1f} MiB "
                  "(--clear-inductor empties it)", highlight=False, soft_wrap=True)
    console.print(f"native kernel {row_kernels.KERNEL}: {native.status(row_kernels.KERNEL)}", highlight=False,
                  soft_wrap=True)


# Commands defined next to the engine parts they drive: (module, command names).
_COMMAND_MODULES = {
    "benchopt_bilevel.data.cli": ["datasets"],
    "benchopt_bilevel.cli_leaderboard": ["publish", "compare", "score"],
    "benchopt_bilevel.cli_tune": ["tune"],
    "benchopt_bilevel.cli_check": ["check"],
    "benchopt_bilevel.cli_benchopt": ["export_benchopt"],
    "benchopt_bilevel.cli_claims": ["claims"],
    "benchopt_bilevel.cli_hypergradients": ["hypergradients_command"],
}


def _register_optional_commands() -> None:
    import importlib  # noqa: PLC0415

    for module_name, command_names in _COMMAND_MODULES.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:  # a part not present must not break the rest
            if error.name != module_name:
                raise
            continue
        for command_name in command_names:
            command = getattr(module, command_name, None)
            if command is not None:
                main.add_command(command)


_register_optional_commands()


if __name__ == "__main__":
    sys.exit(main())
