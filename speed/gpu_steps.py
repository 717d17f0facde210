"""Per step on a CUDA device: the reference solvers eager and with CUDA graphs, next to JAX there.

    python speed/gpu_steps.py [--seconds 1] [--unroll 1] [--solvers soba,saba] [--table T.md]

The GPU column of docs/fast-vs-jax.md. On logreg (ijcnn1, batch 64, float32), each reference
solver with its default parameters:

- eager: `solver.step` in a Python loop under `torch.no_grad()`;
- CUDA graphs: the runner's compiled chunk on CUDA (`chunks.make_chunk(..., compile=True)`:
  `torch.compile` with mode "reduce-overhead", `--unroll` steps per graph), its compilation timed
  apart, its state after CHECK_STEPS steps compared with as many eager steps;
- JAX: the comparator of speed/jax_reference.py (SOBA, SABA, AmIGO, ESJ) on jax's default
  device, 128-step `lax.scan` epochs (4 for ESJ) synchronized with `block_until_ready`.

A figure is the best call of `steps` steps over about `--seconds`, each call ended by
`torch.cuda.synchronize()` (128 steps a call, 4 for the full-batch solvers, SRBA per iteration as
in speed/test_bench_fast.py). Peak memory is `torch.cuda.max_memory_allocated` over the solver's
eager and graph runs, the problem's data included. Rows are written to the table as they come, so
a run cut short keeps what it measured, and a solver whose compiled chunk fails gets its error in
the table. Needs a CUDA device: without one it says so and stops. Figures and findings:
docs/fast-vs-jax.md, "GPU column".
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from benchopt_bilevel import rng
from benchopt_bilevel.chunks import make_chunk
from benchopt_bilevel.facts import ProblemFacts
from benchopt_bilevel.fixtures import build_problem
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import get_solver

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_bench_fast import REFERENCE_US, eager_steps, per_step_us  # noqa: E402

CHUNK, FULL_BATCH_CHUNK, CHECK_STEPS = 128, 4, 4
JAX_METHODS = ("soba", "saba", "amigo", "esj")
HEADER = ("| solver | eager µs/step | CUDA graphs µs/step | graphs compile s | JAX GPU µs/step | graphs / JAX GPU "
          "| eager / graphs | peak memory MiB | max abs diff (4 steps) |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|")


def synchronized(run):
    """`run(state, n)` ended by `torch.cuda.synchronize()`: what a timed call must include."""
    def call(state, n):
        state = run(state, n)
        torch.cuda.synchronize()
        return state
    return call


def jax_figures(seconds: float) -> dict[str, float]:
    try:
        import jax  # noqa: PLC0415
        import jax_reference  # noqa: PLC0415
    except ImportError as error:
        print(f"no JAX comparator: {error}")
        return {}
    print(f"jax {jax.__version__} on {jax.devices()[0]}")
    data = jax_reference.logreg_data()
    figures = {}
    for name in JAX_METHODS:
        timing = jax_reference.time_method(name, data, seconds=seconds)
        figures[name] = timing.best_us
        print(f"JAX {name}: {timing.best_us:.1f} µs/step (median {timing.median_us:.1f}, compile {timing.compile_s:.1f} s)",
              flush=True)
    return figures


def solver_row(name: str, problem, seconds: float, unroll: int, device: torch.device) -> dict:
    solver = get_solver(name)()
    oracles = Oracles(problem)
    with torch.no_grad():
        start = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0, device))
    start = {k: v.clone() for k, v in start.items()}
    iterations = solver.period(ProblemFacts.of(problem)) if name == "srba" else 1
    steps = max(unroll, CHUNK // iterations // unroll * unroll) if solver.stochastic else FULL_BATCH_CHUNK
    torch.cuda.reset_peak_memory_stats()
    eager = eager_steps(solver, oracles)
    row = {"eager": per_step_us(synchronized(eager), dict(start), steps, seconds)[0] / iterations}
    try:
        graphs = make_chunk(solver, oracles, True, device, unroll=unroll)
        began = time.perf_counter()
        with torch.no_grad():
            checked = graphs(dict(start), CHECK_STEPS)  # compiles
            torch.cuda.synchronize()
            row["compile_s"] = time.perf_counter() - began
            expected = eager(dict(start), CHECK_STEPS)
            row["diff"] = max(float((checked[k].double() - expected[k].double()).abs().max())
                              for k in expected if expected[k].is_floating_point())
            row["graphs"] = per_step_us(synchronized(graphs), dict(start), steps, seconds)[0] / iterations
    except Exception as error:  # noqa: BLE001 - reported in the table
        print(f"{name}: {type(error).__name__}: {str(error)[:1500]}", flush=True)
        row["error"] = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:120] if str(error).strip() else ''}"
    row["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return row


def cell(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="of timed calls per figure")
    parser.add_argument("--unroll", type=int, default=1, help="steps per CUDA graph")
    # The solvers with a JAX comparator first: a run cut short keeps the ratios.
    order = [*JAX_METHODS, *(name for name in REFERENCE_US if name not in JAX_METHODS)]
    parser.add_argument("--solvers", default=",".join(order), help="comma-separated")
    parser.add_argument("--table", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device (torch.cuda.is_available() is False)")
    device = torch.device("cuda")
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}, unroll {args.unroll}", flush=True)
    jax = jax_figures(args.seconds)
    problem = build_problem("logreg", torch.float32, device)
    lines = [HEADER]
    for name in args.solvers.split(","):
        row = solver_row(name, problem, args.seconds, args.unroll, device)
        graphs, theirs = row.get("graphs"), jax.get(name)
        diff = f"{row['diff']:.1e}" if "diff" in row else "—"
        lines.append(f"| {name} | {cell(row['eager'])} | {cell(graphs)} | {cell(row.get('compile_s'))} | {cell(theirs)} "
                     f"| {cell(graphs / theirs if graphs and theirs else None, 2)} "
                     f"| {cell(row['eager'] / graphs if graphs else None, 2)} | {cell(row['peak_mib'])} | {diff} |"
                     + (f" {row['error']}" if "error" in row else ""))
        print(lines[-1], flush=True)
        if args.table:
            args.table.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
