"""The `tune` command (registered on the main `benchopt-bilevel` group): the tuning protocol of
`tuning.py` on the same executors as `run` (isolated workers, a time limit per run, Slurm), with
the same resume: rerunning the same command reuses every run already complete in OUTPUT_DIR.
"""
from __future__ import annotations

import re
from pathlib import Path

import click
from rich.console import Console

from .cli_execution import Execution, execution_options
from .cli_leaderboard import _number, user_errors


@click.command("tune")
@click.option("--problem", "problem", required=True, metavar="SPEC",
              help="The problem instance to tune on, e.g. 'quadratic[dim_x=10,dim_y=10]'.")
@click.option("--solver", "solvers", multiple=True, metavar="SPEC",
              help="Solver(s) to tune (repeatable); parameters given are fixed, e.g. 'soba[decay_inner=0.5]'. "
                   "[default: every registered solver that can run on the problem]")
@click.option("--n-trials", type=int, default=8, show_default=True, help="Quasi-random trials per solver.")
@click.option("--tuning-seeds", default="0,1", show_default=True, help="Seeds of the tuning runs, e.g. 0,1 or 0-2.")
@click.option("--fresh-seeds", default="100-102", show_default=True,
              help="Seeds of the evaluation of the selection (disjoint from the tuning seeds).")
@click.option("--max-time", type=float, default=5.0, show_default=True, help="Seconds of steps per run.")
@click.option("--max-steps", type=int, default=None, help="Steps per run (optional).")
@click.option("--n-evals", type=int, default=25, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32", show_default=True)
@click.option("--compile", "compile_", is_flag=True, help="torch.compile chunks of steps.")
@click.option("--path", "step_path", type=click.Choice(["eager", "fast", "auto"]), default="auto", show_default=True,
              help="how steps run without --compile: auto takes the fast path (one cached build per solver, "
                   "reused by every trial and seed) when an eager step takes under 1 ms; eager turns it off.")
@click.option("--no-stop-at-target", is_flag=True, help="Run tuning trials to the end even after the target.")
@click.option("--target-value", type=float, default=None, help="Override the problem's target value.")
@click.option("--shift-seed", type=int, default=None, help="Random shift of the Halton sequence (default: none).")
@click.option("--label", default=None, help="Label of the artefact [default: PROBLEM-tuned].")
@click.option("--output-dir", type=click.Path(path_type=Path), default=Path("results"), show_default=True,
              help="Fresh-seed runs go here (leaderboard results), tuning runs to OUTPUT_DIR/trials; "
                   "runs already complete there are reused (--force reruns them).")
@click.option("--artefact", "artefact_path", type=click.Path(path_type=Path), default=None,
              help="Where to write the YAML artefact [default: OUTPUT_DIR/tuning-LABEL.yaml].")
@execution_options
@user_errors
def tune(problem: str, solvers: tuple[str, ...], n_trials: int, tuning_seeds: str, fresh_seeds: str,
         max_time: float, max_steps: int | None, n_evals: int, device: str, dtype: str, compile_: bool,
         step_path: str, no_stop_at_target: bool, target_value: float | None, shift_seed: int | None, label: str | None,
         output_dir: Path, artefact_path: Path | None, execution: Execution) -> None:
    """Tune solvers on one problem with the same quasi-random budget, then evaluate on fresh seeds.

    Writes a labelled, versioned YAML artefact that is also a run configuration:
    `benchopt-bilevel run --config ARTEFACT` replays the fresh-seed evaluation. An interrupted
    tuning resumes: the same command runs only the runs not yet complete in OUTPUT_DIR.
    """
    from .config import parse_seeds, run_config
    from .params import build_params, parse_spec
    from .registry import get_problem
    from .registry import solvers as all_solvers
    from .runner import DTYPES, build_problem, resolve_device
    from .tuning import TuningPlan, tune as run_tuning, write_artefact

    from .reference_specs import for_tuning

    config = run_config({"max_time": max_time, "max_steps": max_steps, "n_evals": n_evals, "device": device,
                         "dtype": dtype, "compile": compile_,
                         # auto is for the CPU and for uncompiled steps: elsewhere it would only be refused
                         "step_path": step_path if not (compile_ or device.startswith("cuda")) or step_path == "fast"
                         else "eager"})
    # The reference benchmark's specs (SOBA[step_size=...,batch_size=64]) become ours for this problem.
    translated = [for_tuning(spec, problem) for spec in solvers]
    solvers = tuple(ours for specs, _ in translated for ours in specs)
    notes = list(dict.fromkeys(note for _, spec_notes in translated for note in spec_notes))
    if not solvers:
        name, params = parse_spec(problem)
        problem_cls = get_problem(name)
        instance = build_problem(problem_cls, build_params(problem_cls.Params, params, f"problem {name!r}"),
                                 resolve_device(device), DTYPES[dtype])
        solvers = tuple(n for n, cls in all_solvers().items() if not cls().skip(instance))
    plan = TuningPlan(problem=problem, solvers=list(solvers), n_trials=n_trials,
                      tuning_seeds=parse_seeds(tuning_seeds), fresh_seeds=parse_seeds(fresh_seeds), run=config,
                      stop_at_target_when_tuning=not no_stop_at_target, label=label or "", shift_seed=shift_seed,
                      target=target_value)
    plan.check()  # a bad plan ends before any worker starts
    executor = execution.make_executor(config.max_time, config.step_path)
    err = Console(stderr=True, soft_wrap=True)
    for note in notes:
        err.print(note, highlight=False, markup=False)
    err.print(f"{len(plan.solvers)} solver(s) × {n_trials} trial(s) × {len(plan.tuning_seeds)} tuning seed(s) "
              f"→ {output_dir}/trials/, then the selections on {len(plan.fresh_seeds)} fresh seed(s) → "
              f"{output_dir}/", highlight=False)
    artefact = run_tuning(plan, output_dir, executor=executor, console=err, force=execution.force)
    path = artefact_path or output_dir / f"tuning-{_safe(artefact['tuning']['label'])}.yaml"
    write_artefact(artefact, path)
    for name, report in artefact["tuning"]["solvers"].items():
        fresh = report["fresh_score"]
        click.echo(f"{name}: {report['spec']}  fresh seeds: median time-to-target "
                   f"{_number(fresh['time_to_target_median'])} s, reached {fresh['n_reached']}/{fresh['n_runs']}",
                   err=True)
        steps = report.get("steps", {})
        if steps.get("built") or steps.get("reused"):
            click.echo(f"  fast path: {steps['built']} build(s), {steps['reused']} run(s) reused a cached build, "
                       f"{steps['eager']} eager", err=True)
    click.echo(str(path))


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "tuning"
