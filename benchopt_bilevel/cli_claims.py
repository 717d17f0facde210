"""The `claims` command (registered on the main `benchopt-bilevel` group): run the claims track's
experiments on the same executors as `run`, with the same resume, and print one verdict a claim.
"""
from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from .cli_execution import Execution, execution_options
from .cli_leaderboard import user_errors


@click.command("claims")
@click.option("--only", "only", multiple=True, metavar="ID", help="Run only this claim (repeatable).")
@click.option("--list", "list_only", is_flag=True, help="List the claims and their experiments; run nothing.")
@click.option("-o", "--output-dir", type=click.Path(path_type=Path), default=Path("claims"), show_default=True,
              help="Runs go here as ordinary run files (runs already complete are reused), the verdicts "
                   "to OUTPUT_DIR/claims.json; `publish OUTPUT_DIR --site SITE` shows them on a Claims page.")
@click.option("--path", "step_path", type=click.Choice(["eager", "fast", "auto"]), default="auto", show_default=True,
              help="how steps run: auto takes the fast path (built once per solver, cached) for solvers "
                   "whose eager step is overhead-bound, eager elsewhere (docs/compile.md).")
@execution_options
@user_errors
def claims(only: tuple[str, ...], list_only: bool, output_dir: Path, step_path: str, execution: Execution) -> None:
    """Check the papers' headline claims: each claim's experiment, then its verdict
    (holds, fails or inconclusive) with the figures behind it."""
    from .claims import select
    from .claims.run import CLAIMS_FILE, line, run_claims

    chosen = select(only)
    if list_only:
        for claim in chosen:
            e = claim.experiment
            budget = f"{e.max_steps} steps" if e.max_steps else f"{e.max_time:g} s"
            click.echo(f"{claim.id}: {claim.statement}\n  {e.problem} × {', '.join(e.solvers)}; "
                       f"seeds {len(e.seeds)}, {budget}, {e.dtype} ({claim.paper})")
        return
    err = Console(stderr=True, soft_wrap=True)
    longest = max(claim.experiment.max_time for claim in chosen)
    executor = execution.make_executor(longest, step_path)
    entries = run_claims(chosen, output_dir, console=err, executor=executor, force=execution.force, step_path=step_path,
                         on_claim=lambda entry: click.echo(line(entry)))
    counts = {verdict: sum(e["verdict"] == verdict for e in entries) for verdict in ("holds", "fails", "inconclusive")}
    click.echo(f"{len(entries)} claim(s): {counts['holds']} hold, {counts['fails']} fail, "
               f"{counts['inconclusive']} inconclusive; verdicts in {output_dir / CLAIMS_FILE}")
