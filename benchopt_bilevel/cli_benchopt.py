"""The `export-benchopt` command (registered on the main `benchopt-bilevel` group): results as
benchmark folders for benchopt's own `plot` and `generate-results` (see benchopt_export.py)."""
from __future__ import annotations

from pathlib import Path

import click

from .cli_leaderboard import user_errors
from .errors import UserError


@click.command("export-benchopt")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", "root", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Where to write the benchmark folders (one per problem instance).")
@user_errors
def export_benchopt(results: tuple[Path, ...], root: Path) -> None:
    """Write RESULTS (results directories) as benchopt benchmark folders under OUTPUT:
    `benchopt generate-results --root OUTPUT` or `benchopt plot OUTPUT/<instance>` then reads them."""
    from .benchopt_export import export_directories  # noqa: PLC0415

    written = export_directories(results, root)
    if not written:
        raise UserError(f"no evaluated runs in {', '.join(map(str, results))}")
    for path in written:
        click.echo(f"wrote {path}")
