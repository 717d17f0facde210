"""The JAX reference benchmark's tuned ijcnn1 parameters against our defaults, 20 s per run.

Each solver line of configs/reference-ijcnn1-best.yml (the reference's own specs) runs once with
its tuned parameters and once at our defaults, on the config's problem, one seed, the same time
budget; the table gives h(x) = f(x, y*(x)) and the relative stationarity ‖∇h‖²/‖∇h(x0)‖² of the
last evaluation (≤ the budget), tuned against default.

    python scripts/reference_ijcnn1.py                              # print the table
    python scripts/reference_ijcnn1.py --doc docs/problems.md       # and rewrite it there

In the document the table lives between the lines START and END below; only that part is rewritten.
Runs go to --output (default results/reference-ijcnn1); a rerun reuses the runs already there.
"""
from __future__ import annotations

import argparse
import math
import platform
import sys
from pathlib import Path

import pandas as pd

from benchopt_bilevel.benchmark import expand, run_cells
from benchopt_bilevel.config import BenchmarkSpec, load_config
from benchopt_bilevel.errors import UserError
from benchopt_bilevel.runner import Cell, RunConfig

START = "<!-- reference-ijcnn1-table: start (scripts/reference_ijcnn1.py writes this part) -->"
END = "<!-- reference-ijcnn1-table: end -->"
CONFIG = Path(__file__).resolve().parent.parent / "configs" / "reference-ijcnn1-best.yml"


def _number(value: float) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.4g}"


def _cells(config: dict, seed: int) -> tuple[list[tuple[str, Cell | None, Cell | None, str]], str]:
    """(reference name, tuned cell, default cell, why not run) per solver line, and the problem spec."""
    problem = config["problems"][0]
    rows = []
    for line in config["solvers"]:
        name = line.partition("[")[0].strip()
        try:
            (tuned,) = [c for c in expand(BenchmarkSpec([problem], [line])) if c.seed == seed] or [None]
            if tuned is None:
                raise UserError(f"seed {seed} is not among its random_state")
            default = Cell(tuned.problem, tuned.solver, tuned.problem_params, {}, seed)
            rows.append((name, tuned, default, ""))
        except UserError as error:
            rows.append((name, None, None, str(error)))
    return rows, problem


def _final(table: pd.DataFrame | None, column: str) -> float:
    if table is None or column not in table or table[column].dropna().empty:
        return math.nan
    return float(table[column].dropna().iloc[-1])


def _status(table: pd.DataFrame | None) -> str:
    if table is None:
        return "–"
    final = table.iloc[-1]
    return str(final["status"]) if final["status"] != "ok" else f"ok ({final['stop_reason']})"


def markdown(rows: list[tuple[str, Cell | None, Cell | None, str]], tables: dict[int, pd.DataFrame],
             problem: str, max_time: float, seed: int) -> str:
    """The table, with a line saying what ran where."""
    lines = [f"`{problem}`, seed {seed}, {max_time:g} s of steps per run, float32, eager, "
             f"{platform.processor() or platform.machine()} ({platform.system()}); last evaluation of each run.",
             "",
             "| reference | ours, tuned | h tuned | h default | ‖∇h‖² rel. tuned | ‖∇h‖² rel. default | status tuned / default |",
             "|---|---|---|---|---|---|---|"]
    for name, tuned, default, why in rows:
        if tuned is None:
            lines.append(f"| {name} | not replayed: {why} | – | – | – | – | – |")
            continue
        params = ",".join(f"{k}={v}" for k, v in tuned.solver_params.items())
        a, b = tables.get(id(tuned)), tables.get(id(default))
        lines.append(f"| {name} | `{tuned.solver}[{params}]` | {_number(_final(a, 'objective_h'))} | "
                     f"{_number(_final(b, 'objective_h'))} | {_number(_final(a, 'objective_relative_grad_norm2'))} | "
                     f"{_number(_final(b, 'objective_relative_grad_norm2'))} | {_status(a)} / {_status(b)} |")
    return "\n".join(lines)


def rewrite(doc: Path, table: str) -> None:
    text = doc.read_text()
    if START not in text or END not in text:
        sys.exit(f"{doc} has no {START!r} ... {END!r} block")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(f"{head}{START}\n{table}\n{END}{tail}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--max-time", type=float, default=20.0, help="seconds of steps per run (default 20)")
    parser.add_argument("--seed", type=int, default=1, help="one of the reference's seeds (default 1)")
    parser.add_argument("--output", type=Path, default=Path("results/reference-ijcnn1"))
    parser.add_argument("--doc", type=Path, default=None, help="rewrite the table in this markdown file")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    rows, problem = _cells(config, args.seed)
    cells = [cell for _, tuned, default, _ in rows if tuned is not None for cell in (tuned, default)]
    run = RunConfig(max_time=args.max_time, n_evals=config.get("n_evals", 25))
    # run_cells returns each cell's rows in the order of the cells.
    tables = dict(zip(map(id, cells), run_cells(cells, run, args.output))) if cells else {}
    table = markdown(rows, tables, problem, args.max_time, args.seed)
    print(table)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "table.md").write_text(table + "\n")
    if args.doc:
        rewrite(args.doc, table)


if __name__ == "__main__":
    main()
