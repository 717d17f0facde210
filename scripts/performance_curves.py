"""Per-step time and peak memory against problem size: the curves and tables of docs/performance.md.

    python scripts/performance_curves.py [--budget-s 900] [--out docs/performance]

Measures, in this order, until the budget is spent (what is left is listed as not measured):

1. the quadratic (problems/quadratic.py, batch 64) for n = n_inner = n_outer in {1k, 4k, 16k, 64k}
   and d = dim_x = dim_y in {10, 100, 1000}, solvers SOLVERS, eager; a size whose float64
   construction needs more than --build-gib is not built (its reason goes in the table);
2. logreg on ijcnn1 (the literature's problem), same solvers, eager;
3. with --deq, the DEQ on synthetic images, tiny and small configurations, DEQ_SOLVERS, eager
   (slow: left out by default, and the table says so);
4. the fast path (benchopt_bilevel/fast.py: export, AOTInductor build, load) for FAST_CELLS,
   where an export or a build fails the reason goes in the table. A build starts only when the
   budget left covers the longest build so far (300 s before the first): builds take 2 minutes
   on an idle 2-core machine and over 10 on a loaded one.

Eager cells go through the runner (`run_cell`, float32, one thread): per-step time is the clock
between the first and the last evaluation over the steps in between (evaluations excluded), the
peak memory is the runner's `peak_memory_bytes` (what the method holds above the problem's data,
benchopt_bilevel/memory.py). Writes DIR/curves.csv, DIR/*.svg and the tables of
docs/performance.md between its markers (the rest of the page is left as is).
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchopt_bilevel import fast, rng  # noqa: E402
from benchopt_bilevel.cells import Cell, RunConfig  # noqa: E402
from benchopt_bilevel.fixtures import build_problem  # noqa: E402
from benchopt_bilevel.memory import PeakMemory  # noqa: E402
from benchopt_bilevel.oracles import Oracles  # noqa: E402
from benchopt_bilevel.registry import get_solver  # noqa: E402
from benchopt_bilevel.runner import run_cell  # noqa: E402

SOLVERS = ("soba", "saba", "amigo", "stocbio")
DEQ_SOLVERS = ("deq-implicit", "shine")
SIZES_N = (1024, 4096, 16384, 65536)
SIZES_D = (10, 100, 1000)
FAST_CELLS = (("soba", 1024, 100), ("saba", 1024, 100))
DEQ_NOT_MEASURED = ("not in the default budget: one deq-implicit run on the small synthetic "
                    "configuration (1 s of steps) did not finish in 300 s on the machine of the tables; --deq runs it")
START, END = "<!-- performance-tables:start -->", "<!-- performance-tables:end -->"
FIELDS = ("group", "problem", "size", "n", "d", "solver", "path", "ms_per_step", "steps",
          "peak_memory_mb", "data_mb", "status", "note")


def quadratic_data_bytes(n: int, d: int, itemsize: int = 4) -> int:
    """The quadratic's per-sample data: six d×d matrices and four d-vectors per sample, inner and
    outer halves of n samples each (A, B, C, a, b and F, H, K, f, h)."""
    return (6 * n * d * d + 4 * n * d) * itemsize


def quadratic_build_bytes(n: int, d: int) -> int:
    """Memory to build it: the data in float64 plus the float64 perturbations of one matrix set
    being drawn (three n × d² temporaries), before the cast to float32."""
    return quadratic_data_bytes(n, d, 8) + 3 * n * d * d * 8


def eager_row(problem: str, params: dict, solver: str, max_time: float) -> dict:
    """Per-step time and peak memory of one run of the runner (float32, eager)."""
    table = run_cell(Cell(problem, solver, params, {}),
                     RunConfig(max_time=max_time, max_steps=100_000, n_evals=3, dtype="float32"))
    last = table.iloc[-1]
    row = {"status": str(last["status"]), "note": str(last["message"])[:120],
           "peak_memory_mb": float(table["peak_memory_bytes"].max()) / 2**20}
    first = table.iloc[0]
    steps = int(last["step"] - first["step"])
    if steps > 0:
        row.update(ms_per_step=1e3 * float(last["time"] - first["time"]) / steps, steps=steps)
    return row


def fast_row(solver_name: str, n: int, d: int, seconds: float, build_dir: str) -> dict:
    """Per-step time and peak memory of the solver's fast path on the quadratic (float32)."""
    problem = build_problem("quadratic", torch.float32, n_inner=n, n_outer=n, dim_x=d, dim_y=d)
    solver, oracles = get_solver(solver_name)(), Oracles(problem)
    with torch.no_grad():
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0))
    state = {k: v.clone() for k, v in state.items()}
    began = time.perf_counter()
    try:
        program = fast.export_steps(solver, oracles, state)
    except Exception as error:  # noqa: BLE001 - the reason goes in the table
        return {"status": "not measured", "note": f"export failed: {type(error).__name__}: {str(error)[:80]}"}
    path = fast.build_library(program, os.path.join(build_dir, f"{solver_name}-{n}-{d}.pt2"))
    build_s = time.perf_counter() - began
    chunk = fast.steps_function(fast.load_library(path), solver, list(state))
    state = chunk(state, 10)  # warm-up
    memory = PeakMemory(torch.device("cpu"))
    memory.start()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        state = chunk(state, 50)
        steps += 50
    elapsed = time.perf_counter() - start
    return {"status": "ok", "ms_per_step": 1e3 * elapsed / steps, "steps": steps, "build_s": build_s,
            "peak_memory_mb": memory.peak() / 2**20, "note": f"build {build_s:.0f} s"}


def plan(build_gib: float, with_deq: bool) -> list[dict]:
    cells = []
    for d in SIZES_D:
        for n in SIZES_N:
            base = {"group": "quadratic", "problem": "quadratic", "size": f"n={n} d={d}", "n": n, "d": d,
                    "data_mb": quadratic_data_bytes(n, d) / 2**20,
                    "params": {"n_inner": n, "n_outer": n, "dim_x": d, "dim_y": d}}
            need = quadratic_build_bytes(n, d) / 2**30
            skip = f"not built: {need:.0f} GiB to build (limit {build_gib:g})" if need > build_gib else ""
            cells += [{**base, "solver": s, "path": "eager", "skip": skip} for s in SOLVERS]
    cells += [{"group": "logreg", "problem": "logreg", "size": "ijcnn1", "solver": s, "path": "eager",
               "params": {"dataset": "ijcnn1"}, "skip": ""} for s in SOLVERS]
    cells += [{"group": "logreg", "problem": "logreg", "size": "covtype-size synthetic", "solver": s,
               "path": "eager", "params": {}, "skip": "not measured: the dataset layer has no synthetic "
               "binary data set and covtype is a download (not on this machine)"} for s in SOLVERS[:1]]
    cells += [{"group": "deq", "problem": "deq", "size": config, "solver": s, "path": "eager",
               "params": {"dataset": "synthetic", "config": config, "n_train": 1024, "n_test": 128},
               "skip": "" if with_deq else DEQ_NOT_MEASURED} for config in ("tiny", "small") for s in DEQ_SOLVERS]
    cells += [{"group": "quadratic", "problem": "quadratic", "size": f"n={n} d={d}", "n": n, "d": d,
               "data_mb": quadratic_data_bytes(n, d) / 2**20, "solver": s, "path": "fast", "skip": "",
               "params": {}} for s, n, d in FAST_CELLS]
    return cells


def measure(cells: list[dict], budget_s: float, seconds: float) -> list[dict]:
    rows, began, longest_build = [], time.perf_counter(), 300.0
    with tempfile.TemporaryDirectory() as build_dir:
        for cell in cells:
            row = {k: cell.get(k, "") for k in FIELDS}
            left = budget_s - (time.perf_counter() - began)
            if cell["skip"]:
                row.update(status="not measured", note=cell["skip"])
            elif left < (longest_build if cell["path"] == "fast" else 20):
                row.update(status="not measured", note="out of the script's time budget")
            else:
                try:
                    if cell["path"] == "fast":
                        row.update(fast_row(cell["solver"], cell["n"], cell["d"], seconds, build_dir))
                        longest_build = max(longest_build, row.get("build_s", 0.0))
                    else:
                        row.update(eager_row(cell["problem"], cell["params"], cell["solver"], seconds))
                except Exception as error:  # noqa: BLE001 - the reason goes in the table
                    row.update(status="error", note=f"{type(error).__name__}: {str(error)[:100]}")
                    traceback.print_exc()
            rows.append(row)
            print(f"[{time.perf_counter() - began:6.0f} s] {row['problem']:9s} {row['size']:24s} "
                  f"{row['solver']:12s} {row['path']:5s} {row.get('ms_per_step', '')!s:>22s} {row['status']} "
                  f"{row['note']}", flush=True)
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows({k: row.get(k, "") for k in FIELDS} for row in rows)


def _ok(rows, **match) -> list[dict]:
    return [r for r in rows if r["status"] == "ok" and all(r.get(k) == v for k, v in match.items())
            and r.get("ms_per_step", "") != ""]


def plot(rows: list[dict], out: Path) -> list[str]:
    import matplotlib  # noqa: PLC0415 - only the plotting needs it
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    written = []
    for d in SIZES_D:
        for metric, label, name in (("ms_per_step", "ms per step (eager)", "time"),
                                    ("peak_memory_mb", "MiB", "memory")):
            fig, ax = plt.subplots(figsize=(5.5, 3.6))
            drawn = False
            for solver in SOLVERS:
                points = sorted((r["n"], r[metric]) for r in _ok(rows, problem="quadratic", d=d,
                                                                 solver=solver, path="eager"))
                if points:
                    ax.plot(*zip(*points), marker="o", label=f"{solver} (method's peak)" if name == "memory"
                            else solver)
                    drawn = True
            if name == "memory":
                data = sorted({(r["n"], r["data_mb"]) for r in _ok(rows, problem="quadratic", d=d)})
                if data:
                    ax.plot(*zip(*data), "k--", label="data size")
            if not drawn:
                plt.close(fig)
                continue
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("n (samples, inner = outer)")
            ax.set_ylabel(label)
            ax.set_title(f"quadratic, d = {d}, batch 64, float32, 1 thread")
            ax.legend(fontsize=7)
            fig.tight_layout()
            file = f"quadratic_{name}_d{d}.svg"
            fig.savefig(out / file)
            plt.close(fig)
            written.append(file)
    return written


def _cell(value, digits: int = 3) -> str:
    if value == "" or value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def tables(rows: list[dict], figures: list[str], header: str) -> str:
    lines = [header, ""]
    for group, title in (("quadratic", "Quadratic (batch 64)"), ("logreg", "Logistic regression (batch 64)"),
                         ("deq", "DEQ (synthetic images)")):
        lines += [f"### {title}", "",
                  "| size | solver | path | ms/step | peak MiB (method) | data MiB | status |",
                  "|---|---|---|---:|---:|---:|---|"]
        for r in (r for r in rows if r["group"] == group):
            status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r['note']}"
            lines.append(f"| {r['size']} | {r['solver']} | {r['path']} | {_cell(r.get('ms_per_step'))} | "
                         f"{_cell(r.get('peak_memory_mb'))} | {_cell(r.get('data_mb'))} | {status} |")
        lines.append("")
    lines += [f"![{f}](performance/{f})" for f in figures]
    return "\n".join(lines)


def machine() -> str:
    try:
        model = next(line.split(":", 1)[1].strip() for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return f"{model}, {os.cpu_count()} cores, torch {torch.__version__}"


def update_doc(doc: Path, block: str) -> None:
    text = doc.read_text() if doc.exists() else f"# Performance\n\n{START}\n{END}\n"
    if START not in text or END not in text:
        text += f"\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(f"{head}{START}\n{block}\n{END}{tail}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "performance"))
    parser.add_argument("--doc", default=str(REPO / "docs" / "performance.md"))
    parser.add_argument("--budget-s", type=float, default=900.0)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per cell")
    parser.add_argument("--deq", action="store_true", help="measure the DEQ cells too (slow)")
    parser.add_argument("--build-gib", type=float, default=4.0, help="largest quadratic to build (float64)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows = measure(plan(args.build_gib, args.deq), args.budget_s, args.seconds)
    write_csv(rows, out / "curves.csv")
    figures = plot(rows, out)
    header = (f"Measured {started} by `python scripts/performance_curves.py --budget-s {args.budget_s:g} "
              f"--seconds {args.seconds:g}{' --deq' if args.deq else ''}` on {machine()}, one torch thread, load average "
              f"{load_before:.1f} at the start and {os.getloadavg()[0]:.1f} at the end (a shared machine: "
              f"absolute times are noisy, compare within a table). Raw rows: `performance/curves.csv`.")
    update_doc(Path(args.doc), tables(rows, figures, header))


if __name__ == "__main__":
    main()
