"""Per-step time and peak memory against problem size: the curves and tables of docs/performance.md.

    LD_PRELOAD=$(ldconfig -p | grep -m1 libtcmalloc_minimal.so | awk '{print $NF}') \
        nice -n 10 python scripts/performance_curves.py --deq [--budget-s 2400] [--out docs/performance]

(under tcmalloc, the allocator the command line runs under, benchopt_bilevel/allocator.py; the
header of the tables names the allocator that ran). `--replot` only redraws the figures from
DIR/curves.csv. Measures, in this order, until the budget is
spent (what is left is listed as not measured):

1. the quadratic (problems/quadratic.py, batch 64) for n = n_inner = n_outer in {1k, 4k, 16k, 64k}
   and d = dim_x = dim_y in {10, 100, 1000}, solvers SOLVERS, eager; a size whose float64
   construction needs more than --build-gib is not built (its reason goes in the table). At
   d = 1000 no n of the grid fits (23 GiB of float32 data at n = 1k), so BELOW_GRID adds one
   point there at n = 64 (one block: a stochastic step reads one block whatever n);
2. logreg on ijcnn1 (the literature's problem) and on synthetic_binary (datasets/, covtype's
   size: 581,012 x 54, drawn), whole and cut to ijcnn1's 49,990 training rows (n grows at one d),
   same solvers, eager;
3. with --deq, the DEQ on synthetic images, tiny and small configurations at DEQ_PARAMS (16x16
   images, batch 32, so that both run several steps in minutes; at CIFAR's 32x32 and batch 128
   one small run did not finish in 300 s on one thread), deq-implicit with the backward rules
   DEQ_BACKWARDS, DEQ_SECONDS of steps each, eager; without --deq the table says they were left
   out;
4. the fast path (benchopt_bilevel/fast.py: export, AOTInductor build, load) for FAST_CELLS,
   where an export or a build fails the reason goes in the table. A build starts only when the
   budget left covers the longest build so far (300 s before the first).

Eager cells go through the runner (`run_cell`, float32, one thread): per-step time is the clock
between the first and the last evaluation over the steps in between (evaluations excluded), the
peak memory is the runner's `peak_memory_bytes` (what the method holds above the problem's data,
benchopt_bilevel/memory.py). Fast cells time the built library's 50-step calls for --seconds after
a warm-up, the peak memory measured the same way. Writes DIR/curves.csv, DIR/*.svg and the tables
of docs/performance.md between its markers (the rest of the page is left as is).
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

from benchopt_bilevel import allocator, fast, rng  # noqa: E402
from benchopt_bilevel.cells import Cell, RunConfig  # noqa: E402
from benchopt_bilevel.fixtures import build_problem  # noqa: E402
from benchopt_bilevel.memory import PeakMemory  # noqa: E402
from benchopt_bilevel.oracles import Oracles  # noqa: E402
from benchopt_bilevel.registry import get_solver  # noqa: E402
from benchopt_bilevel.runner import run_cell  # noqa: E402

SOLVERS = ("soba", "saba", "amigo", "stocbio")
# The DEQ solver with three backward rules (the shine solver skips episodic problems such as the DEQ).
DEQ_BACKWARDS = ("implicit", "shine", "jfb")
SIZES_N = (1024, 4096, 16384, 65536)
SIZES_D = (10, 100, 1000)
# At d = 1000 every n of the grid needs >= 23 GiB of float32 data: one point below the grid, at
# the largest n (a multiple of the batch) whose float64 build fits --build-gib (n = 64: 4.3 GiB, default limit 5).
BELOW_GRID = ((64, 1000),)
# (dataset, label, n_train_max): the synthetic set also cut to ijcnn1's 49,990 training rows, so
# that a solver's growth in n shows at one d.
LOGREG_DATASETS = (("ijcnn1", "ijcnn1", 0), ("synthetic_binary", "synthetic, 49,990 rows", 49_990),
                   ("synthetic_binary", "covtype-size synthetic", 0))
# DEQ sizes that let both configurations run a few steps in minutes on one thread.
DEQ_PARAMS = {"dataset": "synthetic", "image_size": 16, "batch_size": 32, "n_train": 64, "n_test": 32}
DEQ_SECONDS = 15.0  # timed seconds of a DEQ cell: a small step takes seconds, --seconds would time one
DEQ_NOT_MEASURED = "left out of this run (slow: minutes per cell); --deq runs it"
# (solver, problem, size label): the labels are those of `size_cells`.
FAST_CELLS = (("soba", "quadratic", "n=1024 d=100"), ("amigo", "quadratic", "n=1024 d=100"),
              ("soba", "quadratic", "n=1024 d=10"), ("amigo", "quadratic", "n=1024 d=10"),
              ("soba", "logreg", "ijcnn1"), ("saba", "quadratic", "n=1024 d=100"),
              ("soba", "logreg", "covtype-size synthetic"), ("saba", "logreg", "covtype-size synthetic"))
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


def eager_row(problem: str, params: dict, solver: str, max_time: float, solver_params: dict | None = None) -> dict:
    """Per-step time and peak memory of one run of the runner (float32, eager)."""
    table = run_cell(Cell(problem, solver, params, solver_params or {}),
                     RunConfig(max_time=max_time, max_steps=100_000, n_evals=3, dtype="float32"))
    last = table.iloc[-1]
    row = {"status": str(last["status"]), "note": str(last["message"])[:120],
           "peak_memory_mb": float(table["peak_memory_bytes"].max()) / 2**20}
    first = table.iloc[0]
    steps = int(last["step"] - first["step"])
    if steps > 0:
        row.update(ms_per_step=1e3 * float(last["time"] - first["time"]) / steps, steps=steps)
    return row


def fast_row(solver_name: str, problem_name: str, params: dict, seconds: float, build_dir: str) -> dict:
    """Per-step time and peak memory of the solver's fast path on the problem (float32)."""
    problem = build_problem(problem_name, torch.float32, **params)
    solver, oracles = get_solver(solver_name)(), Oracles(problem)
    with torch.no_grad():
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0))
    state = {k: v.clone() for k, v in state.items()}
    began = time.perf_counter()
    try:
        program = fast.export_steps(solver, oracles, state)
    except Exception as error:  # noqa: BLE001 - the reason goes in the table
        return {"status": "not measured", "note": f"export failed: {type(error).__name__}: {str(error)[:80]}"}
    path = fast.build_library(program, os.path.join(build_dir, f"{solver_name}-{len(os.listdir(build_dir))}.pt2"))
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


def quadratic_cell(n: int, d: int, build_gib: float) -> dict:
    """The quadratic at n samples (inner = outer) and dimension d, with the reason it is not built."""
    need = quadratic_build_bytes(n, d) / 2**30
    skip = f"not built: {need:.0f} GiB to build (limit {build_gib:g})" if need > build_gib else ""
    return {"group": "quadratic", "problem": "quadratic", "size": f"n={n} d={d}", "n": n, "d": d,
            "data_mb": quadratic_data_bytes(n, d) / 2**20, "skip": skip,
            "params": {"n_inner": n, "n_outer": n, "dim_x": d, "dim_y": d}}


def logreg_cell(dataset: str, label: str, n_train_max: int = 0) -> dict:
    """logreg on a binary dataset; n and d are the training rows kept (the training file's, or
    n_train_max) and the features, data MiB their float32 size (what the train and validation
    blocks hold, up to the rows dropped to whole blocks)."""
    from problems._logistic import _load  # noqa: PLC0415 - the problem's own cached loader

    X = _load(dataset).X_train
    n, d = min(len(X), n_train_max or len(X)), X.reshape(len(X), -1).shape[1]
    return {"group": "logreg", "problem": "logreg", "size": label, "n": n, "d": d, "data_mb": n * d * 4 / 2**20,
            "skip": "", "params": {"dataset": dataset, **({"n_train_max": n_train_max} if n_train_max else {})}}


def size_cells(build_gib: float) -> dict[str, dict]:
    """Every problem size of the page by its label (quadratic grid, the point below it, logreg)."""
    cells = [quadratic_cell(n, d, build_gib) for d in SIZES_D for n in SIZES_N]
    cells += [quadratic_cell(n, d, build_gib) for n, d in BELOW_GRID]
    cells += [logreg_cell(*spec) for spec in LOGREG_DATASETS]
    return {c["size"]: c for c in cells}


def plan(build_gib: float, with_deq: bool) -> list[dict]:
    sizes = size_cells(build_gib)
    order = sorted((c for c in sizes.values() if c["group"] == "quadratic"), key=lambda c: (c["d"], c["n"]))
    order += [c for c in sizes.values() if c["group"] == "logreg"]
    cells = [{**c, "solver": s, "path": "eager"} for c in order for s in SOLVERS]
    # A first network run in a process also counts one-time set-up (oneDNN, torch.func: tens of
    # MiB, memory.py): an unreported run takes it, so that no measured cell does.
    if with_deq:
        cells.append({"group": "deq", "problem": "deq", "size": "tiny", "solver": "deq-implicit", "path": "eager",
                      "params": {**DEQ_PARAMS, "config": "tiny"}, "skip": "", "discard": True})
    cells += [{"group": "deq", "problem": "deq", "size": config, "solver": f"deq-implicit ({backward})",
               "solver_name": "deq-implicit", "solver_params": {"backward": backward}, "path": "eager",
               "params": {**DEQ_PARAMS, "config": config}, "skip": "" if with_deq else DEQ_NOT_MEASURED}
              for config in ("tiny", "small") for backward in DEQ_BACKWARDS]
    cells += [{**sizes[size], "solver": s, "path": "fast"} for s, problem, size in FAST_CELLS
              if sizes[size]["problem"] == problem]
    return cells


def measure(cells: list[dict], budget_s: float, seconds: float) -> list[dict]:
    rows, began, longest_build = [], time.perf_counter(), 300.0
    with tempfile.TemporaryDirectory() as build_dir:
        for cell in cells:
            row = {k: cell.get(k, "") for k in FIELDS}
            left = budget_s - (time.perf_counter() - began)
            if cell["skip"]:
                row.update(status="not measured", note=cell["skip"])
            elif left < (longest_build if cell["path"] == "fast" else 120 if cell["group"] == "deq" else 20):
                row.update(status="not measured", note="out of the script's time budget")
            else:
                try:
                    if cell["path"] == "fast":
                        row.update(fast_row(cell["solver"], cell["problem"], cell["params"], seconds, build_dir))
                        longest_build = max(longest_build, row.get("build_s", 0.0))
                    else:
                        row.update(eager_row(cell["problem"], cell["params"], cell.get("solver_name", cell["solver"]),
                                             max(seconds, DEQ_SECONDS) if cell["group"] == "deq" else seconds,
                                             cell.get("solver_params")))
                except Exception as error:  # noqa: BLE001 - the reason goes in the table
                    row.update(status="error", note=f"{type(error).__name__}: {str(error)[:100]}")
                    traceback.print_exc()
            if cell.get("discard"):
                continue
            rows.append(row)
            print(f"[{time.perf_counter() - began:6.0f} s] {row['problem']:9s} {row['size']:24s} "
                  f"{row['solver']:12s} {row['path']:5s} {row.get('ms_per_step', '')!s:>22s} {row['status']} "
                  f"{row['note']}", flush=True)
    return rows


def read_csv(path: Path) -> list[dict]:
    """The rows of write_csv, numbers as numbers (empty cells stay "")."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for key in ("n", "d", "steps"):
            row[key] = int(row[key]) if row[key] else ""
        for key in ("ms_per_step", "peak_memory_mb", "data_mb"):
            row[key] = float(row[key]) if row[key] else ""
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
                                                                 solver=solver, path="eager")
                                if r["n"] in SIZES_N and r[metric] > 0)  # a log scale: 0 (under a page) is left out
                if points:
                    ax.plot(*zip(*points), marker="o", label=f"{solver} (method's peak)" if name == "memory"
                            else solver)
                    drawn = True
            if name == "memory":
                data = sorted({(r["n"], r["data_mb"]) for r in _ok(rows, problem="quadratic", d=d)
                               if r["n"] in SIZES_N})
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


def plot_against_d(rows: list[dict], out: Path) -> list[str]:
    """Time and peak memory per step against d at n = 1024 (d = 1000: the n of BELOW_GRID)."""
    import matplotlib  # noqa: PLC0415 - only the plotting needs it
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    sizes = {(1024, d) for d in SIZES_D} | set(BELOW_GRID)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    drawn = False
    for solver in SOLVERS:
        points = sorted((r["d"], r["ms_per_step"], r["peak_memory_mb"]) for r in _ok(
            rows, problem="quadratic", solver=solver, path="eager") if (r["n"], r["d"]) in sizes)
        if points:
            d, ms, _ = zip(*points)
            axes[0].plot(d, ms, marker="o", label=solver)
            memory = [(d, mb) for d, _, mb in points if mb > 0]  # a log scale: 0 (under a page) is left out
            if memory:
                axes[1].plot(*zip(*memory), marker="o", label=f"{solver} (method's peak)")
            drawn = True
    if not drawn:
        plt.close(fig)
        return []
    data = sorted({(r["d"], r["data_mb"]) for r in _ok(rows, problem="quadratic") if (r["n"], r["d"]) in sizes})
    axes[1].plot(*zip(*data), "k--", label="data size")
    for ax, label in zip(axes, ("ms per step (eager)", "MiB"), strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("d (dim_x = dim_y)")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    axes[0].set_title(f"quadratic, n = 1024 (d = 1000: n = {BELOW_GRID[0][0]}), batch 64", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "quadratic_against_d.svg")
    plt.close(fig)
    return ["quadratic_against_d.svg"]


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
    lines += fast_against_eager(rows)
    lines += [f"![{f}](performance/{f})" for f in figures]
    return "\n".join(lines)


def fast_against_eager(rows: list[dict]) -> list[str]:
    """Each fast cell next to the eager row of the same problem, size and solver."""
    if not any(r["path"] == "fast" for r in rows):
        return []
    lines = ["### Fast path against eager (same problem, size and solver; measured minutes apart)", "",
             "| problem | size | solver | eager ms/step | fast ms/step | eager / fast | fast: build |",
             "|---|---|---|---:|---:|---:|---|"]
    for r in (r for r in rows if r["path"] == "fast"):
        eager = _ok(rows, problem=r["problem"], size=r["size"], solver=r["solver"], path="eager")
        eager_ms = eager[0]["ms_per_step"] if eager else ""
        ratio = eager_ms / r["ms_per_step"] if eager and r.get("ms_per_step", "") != "" else ""
        note = r["note"] if r["status"] == "ok" else f"{r['status']}: {r['note']}"
        lines.append(f"| {r['problem']} | {r['size']} | {r['solver']} | {_cell(eager_ms)} | "
                     f"{_cell(r.get('ms_per_step'))} | {_cell(ratio, 2)} | {note} |")
    return lines + [""]


def source_state() -> str:
    """The commit measured, and whether the measured code (engine, solvers, problems, datasets)
    differed from it in the working tree."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "benchopt_bilevel", "solvers", "problems", "datasets")
    return f"commit {commit}" + (" with uncommitted changes to the measured code" if dirty else "")


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
    parser.add_argument("--replot", action="store_true", help="only redraw the figures from DIR/curves.csv")
    parser.add_argument("--build-gib", type=float, default=5.0, help="largest quadratic to build (GiB, float64)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        rows = read_csv(out / "curves.csv")
        print("\n".join(plot(rows, out) + plot_against_d(rows, out)))
        return
    load_before = os.getloadavg()[0]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    source = source_state()
    rows = measure(plan(args.build_gib, args.deq), args.budget_s, args.seconds)
    write_csv(rows, out / "curves.csv")
    figures = plot(rows, out) + plot_against_d(rows, out)
    header = (f"Measured {started} by `python scripts/performance_curves.py --budget-s {args.budget_s:g} "
              f"--seconds {args.seconds:g} --build-gib {args.build_gib:g}{' --deq' if args.deq else ''}` "
              f"at {source}, under the {allocator.active()} allocator on {machine()}, one torch thread, load average "
              f"{load_before:.1f} at the start and {os.getloadavg()[0]:.1f} at the end (a shared machine: "
              f"absolute times are noisy, compare within a table). Raw rows: `performance/curves.csv`.")
    update_doc(Path(args.doc), tables(rows, figures, header))


if __name__ == "__main__":
    main()
