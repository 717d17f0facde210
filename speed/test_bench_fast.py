"""The fast path per step against JAX, on logreg (ijcnn1, batch 64, float32, CPU), in one run.

    .venv/bin/python -m pytest speed/test_bench_fast.py --benchmark-only -s

Not part of the test suite (minutes of builds; timings on shared machines are noisy). In order:

- test_jax_reference[soba|saba|amigo|esj-hash|threefry]: the JAX comparator (speed/jax_reference.py:
  minimal jitted steps, 128-step `lax.scan` epochs (4 for ESJ's full batch), `block_until_ready`),
  with batches drawn by our counter hash or by jax.random, skipped with a note without jax
  (`pip install -e ".[bench-jax]"`);
- test_fast_path[solver]: each reference solver with its default parameters exported
  (`fast.export_steps`) and built with AOTInductor through the build cache
  (`build_cache.get_or_build`) in an empty temporary directory: the cold figure is export +
  compile + store + load, with a fresh Inductor cache so nothing of an earlier run is reused; the
  warm figure is a second `get_or_build` of the same identity (a hit: key, code hash, load). Then
  timed in calls of CHUNK steps; eager steps are timed on the same state. A solver that does
  not export today is reported as such, not as an error;
- test_full_batch_floor: ESJ's arithmetic alone on the problem's own layouts: its T inner steps
  for Q + 1 points, each the two products over all training rows and the sigmoid between them, in
  library kernels (`floor_parts`: what the step took before the one-pass kernel) and in the
  one-pass kernel the step calls (`row_kernels.sigmoid_row_mean`, native when it builds); and a
  bound: the two products' flops at the rate of a large square sgemm (1024³) plus the sigmoid as
  timed;
- test_table: the table (printed, and written to BENCH_FAST_TABLE if set): µs per step fast and
  eager, the reference's JAX figure scaled to this CPU (reference × JAX SOBA here with hash draws /
  JAX SOBA there), for SOBA, SABA, AmIGO and ESJ also the JAX figure measured here, fast / scaled JAX, and the
  build times.

A µs-per-step figure is the best call of CHUNK steps over about STEP_SECONDS (the median goes to
extra_info): on a shared machine the best call is the one least disturbed by other load, and both
sides are measured the same way. Threads: torch.set_num_threads(1), and JAX with one intra-op
thread (XLA_FLAGS, speed/jax_reference.py): batch-64 steps are too small to share between
threads, and a loaded 2-core machine makes threads wait on each other (speed/test_bench_logreg.py).
"""
from __future__ import annotations

import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from benchopt_bilevel import allocator, build_cache, fast, native, rng, row_kernels
from benchopt_bilevel.facts import ProblemFacts
from benchopt_bilevel.fixtures import build_problem
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import get_solver, solvers

sys.path.insert(0, str(Path(__file__).resolve().parent))

# The reference benchmark's JAX figures, µs per step (ijcnn1, batch 64, float32, synchronized,
# a 2-core Zen 4); BOME and ESJ (PZOBO there) are full batch.
REFERENCE_US = {"soba": 9.0, "fsla": 13.1, "srba": 13.7, "saba": 40.8, "amigo": 73.4, "stocbio": 83.7,
                "mrbo": 88.4, "f2sa": 102.0, "bome": 16_100.0, "esj": 29_900.0}
JAX_METHODS = ("soba", "saba", "amigo", "esj")  # written in speed/jax_reference.py
# The comparators whose scale calibrates the reference's figures: dispatch-bound mini-batch
# steps, like most of the reference list. ESJ's full batch is matrix products: its own scale is
# printed, not folded into theirs.
SCALE_METHODS = ("soba", "saba", "amigo")
# Batch draws of the comparator: "hash" (our solvers' counter hash: the same work on both sides)
# scales the reference's figures; "threefry" (jax.random) is reported next to it.
JAX_SAMPLERS = ("hash", "threefry")
SCALE_SAMPLER = "hash"
SOLVERS = [name for name in REFERENCE_US if name in solvers()]
CHUNK = 128  # steps per call, as the JAX epochs
FULL_BATCH_CHUNK = 4  # a full-batch step is milliseconds: the call's overhead is nothing there
STEP_SECONDS = float(os.environ.get("BENCH_FAST_SECONDS", "2"))  # of timed calls per figure
CHECK_STEPS = 4  # steps compared between the library and eager

_jax: dict[str, dict] = {}
_fast: dict[str, dict] = {}
_floor: dict[str, float] = {}


@pytest.fixture(autouse=True, scope="module")
def one_thread_fresh_inductor_cache():
    """One torch thread; Inductor's caches in a fresh directory, so a build here is cold."""
    previous_threads, previous_cache = torch.get_num_threads(), os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench-fast-inductor-") as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        yield
    torch.set_num_threads(previous_threads)
    if previous_cache is None:
        os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
    else:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = previous_cache


@pytest.fixture(scope="module")
def problem():
    return build_problem("logreg", torch.float32)


def per_step_us(run, state, steps: int, seconds: float, min_calls: int = 3) -> tuple[float, float, object]:
    """Best and median µs per step over calls `state = run(state, steps)` for about `seconds`
    (at least `min_calls`), after one warm-up call; the last state too."""
    state = run(state, steps)
    times, deadline = [], time.perf_counter() + seconds
    while len(times) < min_calls or time.perf_counter() < deadline:
        start = time.perf_counter()
        state = run(state, steps)
        times.append((time.perf_counter() - start) / steps * 1e6)
    return min(times), statistics.median(times), state


@pytest.mark.parametrize("sampler", JAX_SAMPLERS)
@pytest.mark.parametrize("name", JAX_METHODS)
def test_jax_reference(benchmark, name, sampler):
    pytest.importorskip("jax", reason="the JAX comparator needs jax: pip install -e '.[bench-jax]'")
    import jax_reference  # noqa: PLC0415 - imports jax, sets its thread flags first

    data = jax_reference.logreg_data()
    timing = benchmark.pedantic(
        lambda: jax_reference.time_method(name, data, seconds=STEP_SECONDS, sampler=sampler), rounds=1, iterations=1)
    _jax[sampler, name] = {"us": timing.best_us, "median_us": timing.median_us, "compile_s": timing.compile_s}
    benchmark.extra_info.update(us_per_step=timing.best_us, median_us_per_step=timing.median_us,
                                compile_s=timing.compile_s, epochs=timing.epochs, steps_per_epoch=CHUNK,
                                reference_us=REFERENCE_US[name], sampler=sampler)
    assert timing.finite, f"JAX {name} diverged"


def eager_steps(solver, oracles):
    def run(state, n):
        with torch.no_grad():
            for _ in range(n):
                state = solver.step(oracles, state)
        return state
    return run


def _no_build(path: str) -> None:
    raise AssertionError("the second get_or_build of an identity must be a cache hit")


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:160] if lines else ''}"


def _max_difference(a: dict, b: dict) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


@pytest.mark.parametrize("name", SOLVERS)
def test_fast_path(benchmark, problem, name):
    solver = get_solver(name)()
    oracles = Oracles(problem)
    with torch.no_grad():
        start_state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0))
    start_state = {k: v.clone() for k, v in start_state.items()}
    keys = list(start_state)
    # SRBA's step is one whole period (full-batch restart + period − 1 iterations): per iteration,
    # and calls of about CHUNK iterations.
    iterations = solver.period(ProblemFacts.of(problem)) if name == "srba" else 1
    steps = max(1, CHUNK // iterations) if solver.stochastic else FULL_BATCH_CHUNK
    row = {"iterations_per_step": iterations}

    def measure():
        eager = eager_steps(solver, oracles)
        best, median, _ = per_step_us(eager, dict(start_state), steps, STEP_SECONDS)
        row.update(eager_us=best / iterations, eager_median_us=median / iterations)
        start = time.perf_counter()
        try:
            program = fast.export_steps(solver, oracles, start_state)
        except Exception as error:  # noqa: BLE001 - reported in the table: several are being fixed
            row["error"] = f"does not export yet: {_first_line(error)}"
            return
        row["export_s"] = time.perf_counter() - start
        identity = build_cache.build_identity(solver, problem, start_state, torch.float32, torch.device("cpu"))
        with tempfile.TemporaryDirectory(prefix=f"bench-fast-{name}-") as directory:
            try:  # cold: a miss of an empty build cache (export above, compile, store, load)
                cold = build_cache.get_or_build(identity, keys, lambda path: fast.build_library(program, path),
                                                fast.load_library, Path(directory))
            except Exception as error:  # noqa: BLE001 - as above, for the compile
                row["error"] = f"does not build yet: {_first_line(error)}"
                return
            row["cold_s"] = time.perf_counter() - start
            start = time.perf_counter()  # warm: a hit (identity and code hash, then load)
            warm = build_cache.get_or_build(identity, keys, _no_build, fast.load_library, Path(directory))
            chunk = fast.steps_function(warm.runner, solver, warm.keys)
            row["warm_s"] = time.perf_counter() - start
            row["cache_hits"] = [cold.hit, warm.hit]
            expected = eager(dict(start_state), CHECK_STEPS)
            row["max_difference"] = _max_difference(chunk(dict(start_state), CHECK_STEPS), expected)
            best, median, last = per_step_us(chunk, dict(start_state), steps, STEP_SECONDS)
            row.update(fast_us=best / iterations, fast_median_us=median / iterations,
                       finite=all(bool(torch.isfinite(last[k]).all()) for k in ("x", "y")))

    benchmark.pedantic(measure, rounds=1, iterations=1)
    _fast[name] = row
    benchmark.extra_info.update(row, reference_us=REFERENCE_US[name], threads=torch.get_num_threads(),
                                steps_per_call=steps)
    assert math.isfinite(row["eager_us"])
    if "error" not in row:
        assert row["cache_hits"] == [False, True], f"{name}: cold and warm were {row['cache_hits']}"
        assert row["finite"], f"{name}: the fast path's iterates are not finite"


def floor_parts(problem, n_points: int) -> dict[str, tuple]:
    """One full-batch inner gradient for `n_points` rows of y in library kernels (margins on the
    transposed copy, the row mean on the rows: `row_kernels.composite`), each part a (function,
    arguments) pair to time, and "one_pass", the op the fast ESJ step calls."""
    rows_t = problem.train_t  # (d, n)
    rows = problem.train.reshape(-1, rows_t.shape[0])  # (n, d)
    ys = torch.randn(n_points, rows_t.shape[0]) * 0.1
    margins = ys @ rows_t
    weights = torch.sigmoid(-margins)
    return {"margins": (torch.matmul, (ys, rows_t)), "sigmoid": (torch.sigmoid, (margins,)),
            "row_mean": (torch.matmul, (weights, rows)),
            "one_pass": (row_kernels.sigmoid_row_mean, (rows, rows_t, ys))}


LIBRARY_PARTS = ("margins", "sigmoid", "row_mean")


def test_full_batch_floor(benchmark, problem):
    """ESJ's arithmetic: n_inner_steps x (the two products and the sigmoid) for n_directions + 1
    points, in library kernels and in the one-pass op, and its bound."""
    params = get_solver("esj").Params()
    parts = floor_parts(problem, params.n_directions + 1)

    def measure():
        for part, (function, arguments) in parts.items():
            best, _, _ = per_step_us(lambda state, n: [function(*arguments) for _ in range(n)][-1], None,
                                     16, STEP_SECONDS / 2)
            _floor[part] = best
        _floor["esj_step"] = params.n_inner_steps * sum(_floor[part] for part in LIBRARY_PARTS)
        _floor["esj_one_pass"] = params.n_inner_steps * _floor["one_pass"]
        square = torch.randn(1024, 1024)
        best, _, _ = per_step_us(lambda state, n: [square @ square for _ in range(n)][-1], None, 4, STEP_SECONDS / 2)
        _floor["sgemm_gflops"] = 2 * 1024**3 / best / 1e3
        n_points, (n_features, n_rows) = params.n_directions + 1, problem.train_t.shape
        products_us = 2 * 2 * n_points * n_features * n_rows / _floor["sgemm_gflops"] / 1e3
        _floor["esj_bound"] = params.n_inner_steps * (products_us + _floor["sigmoid"])

    benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info.update(_floor)
    assert _floor["esj_step"] > 0


def _scale(sampler: str = SCALE_SAMPLER) -> float | None:
    """This CPU's JAX SOBA time over the reference's (None without the comparator)."""
    return _jax[sampler, "soba"]["us"] / REFERENCE_US["soba"] if (sampler, "soba") in _jax else None


def _fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def table() -> str:
    """The markdown table of the figures measured in this run."""
    scale = _scale()
    lines = ["| solver | fast µs/step | eager µs/step | JAX scaled µs/step | JAX here µs/step | "
             "fast / JAX scaled | fast / JAX here | cold build s | warm s | max abs diff (4 steps) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in SOLVERS:
        if name not in _fast:
            continue
        row = _fast[name]
        scaled = REFERENCE_US[name] * scale if scale else None
        here = _jax.get((SCALE_SAMPLER, name), {}).get("us")
        if "error" in row:
            lines.append(f"| {name} | {row['error']} | {_fmt(row['eager_us'])} | {_fmt(scaled)} | {_fmt(here)} "
                         f"| — | — | — | — | — |")
            continue
        ratio = row["fast_us"] / scaled if scaled else None
        ratio_here = row["fast_us"] / here if here else None
        lines.append(f"| {name} | {_fmt(row['fast_us'])} | {_fmt(row['eager_us'])} | {_fmt(scaled)} | "
                     f"{_fmt(here)} | {_fmt(ratio, 2)} | {_fmt(ratio_here, 2)} | {_fmt(row['cold_s'])} | "
                     f"{_fmt(row['warm_s'], 2)} | "
                     f"{row['max_difference']:.1e} |")
    if not scale:
        return "\n".join([*lines, "", "JAX comparator not run (jax missing or its test deselected): "
                           "no scaled figures"])
    notes = [f"Allocator (both sides, one process): {allocator.active()} (speed/conftest.py).",
             f"JAX SOBA here ({SCALE_SAMPLER} draws) {_jax[SCALE_SAMPLER, 'soba']['us']:.1f} µs/step against "
             f"the reference's 9.0: scale {scale:.2f}."]
    # The scale is SOBA's alone; the comparator's SOBA moves between runs on an idle
    # machine (5.0 to 8.3 µs) more than its SABA and AmIGO do, so the scale of each comparator
    # and the ratios at their median are printed too: a reading that one disturbed figure
    # cannot move much.
    scales = {name: _jax[SCALE_SAMPLER, name]["us"] / REFERENCE_US[name]
              for name in SCALE_METHODS if (SCALE_SAMPLER, name) in _jax}
    median = statistics.median(scales.values())
    at_median = ", ".join(f"{name} {_fast[name]['fast_us'] / (REFERENCE_US[name] * median):.2f}"
                          for name in SOLVERS if name in _fast and "error" not in _fast[name])
    notes.append("Scale by comparator: " + ", ".join(f"{name} {value:.2f}" for name, value in scales.items())
                 + f"; median {median:.2f}. fast / JAX scaled at the median scale: {at_median}.")
    if (SCALE_SAMPLER, "esj") in _jax:  # compute-bound: the dispatch-bound scale does not carry over
        notes.append(f"ESJ's own scale (full batch, JAX here / reference): "
                     f"{_jax[SCALE_SAMPLER, 'esj']['us'] / REFERENCE_US['esj']:.2f}.")
    if _floor and "esj" in _fast and "fast_us" in _fast["esj"]:
        notes.append(f"ESJ's arithmetic in library kernels (one thread, test_full_batch_floor): {_floor['esj_step']:,.0f} "
                     f"µs/step = {_floor['esj_step'] / (REFERENCE_US['esj'] * scale):.2f}x the scaled reference; per "
                     f"inner step margins {_floor['margins']:.0f}, sigmoid {_floor['sigmoid']:.0f}, row mean "
                     f"{_floor['row_mean']:.0f} µs.")
        notes.append(f"ESJ's arithmetic in the one-pass op (row_kernels.sigmoid_row_mean, native kernel "
                     f"{native.status(row_kernels.KERNEL).split(' (')[0]}): {_floor['one_pass']:.0f} µs per inner step, "
                     f"{_floor['esj_one_pass']:,.0f} µs/step = "
                     f"{_floor['esj_one_pass'] / (REFERENCE_US['esj'] * scale):.2f}x the scaled reference; "
                     f"the fast step is {_fast['esj']['fast_us'] / _floor['esj_one_pass']:.2f}x it.")
        notes.append(f"ESJ's bound (the products at a 1024³ sgemm's {_floor['sgemm_gflops']:.0f} GFLOP/s, plus the "
                     f"sigmoid): {_floor['esj_bound']:,.0f} µs/step = "
                     f"{_floor['esj_bound'] / (REFERENCE_US['esj'] * scale):.2f}x the scaled reference.")
    for sampler in JAX_SAMPLERS:
        measured = ", ".join(f"{name} {_jax[sampler, name]['us']:.1f}" for name in JAX_METHODS if (sampler, name) in _jax)
        compile_s = ", ".join(f"{_jax[sampler, name]['compile_s']:.1f}" for name in JAX_METHODS if (sampler, name) in _jax)
        notes.append(f"JAX with {sampler} draws, µs/step: {measured} (jit compile s: {compile_s}).")
    return "\n".join([*lines, "", *notes])


def test_table(benchmark, capsys):
    if not _fast:
        pytest.skip("run with test_fast_path first (same session)")
    text = benchmark.pedantic(table, rounds=1, iterations=1)
    with capsys.disabled():
        print("\n" + text)
    if os.environ.get("BENCH_FAST_TABLE"):
        Path(os.environ["BENCH_FAST_TABLE"]).write_text(text + "\n")
    benchmark.extra_info.update(table=text, scale=_scale())
    assert all(f"| {name} |" in text for name in _fast)
