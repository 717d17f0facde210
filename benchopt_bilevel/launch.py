"""The `benchopt-bilevel` entry point: the command line, started under the preferred memory
allocator (`allocator.py`) before torch is imported."""
from __future__ import annotations


def main() -> None:
    from . import allocator
    from .errors import UserError

    try:
        allocator.reexecute_under_preferred()
    except UserError as error:  # a bad BENCHOPT_BILEVEL_MALLOC: one line, exit 1, as the CLI does
        raise SystemExit(f"Error: {error}") from None
    from .cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
