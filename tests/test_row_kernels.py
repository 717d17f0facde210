"""The one-pass row kernel (benchopt_bilevel/row_kernels.py, csrc/sigmoid_row_mean.cpp).

The native kernel must give the torch composite's values on every shape its tiling handles
(point and feature counts that split into uneven tiles, row counts with a tail after the last
block), propagate NaNs, batch under vmap, differentiate, and run inside a built library (ESJ's
fast path on logreg, float64, against its eager steps). Without a compiler, or turned off, the op
runs the composite.
"""
from __future__ import annotations

import math

import pytest
import torch

from conftest import build_problem, eager_steps, start_state

from benchopt_bilevel import native, row_kernels
from benchopt_bilevel.chunks import FastChunk
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import get_solver

needs_native = pytest.mark.skipif(not row_kernels.uses_native(torch.zeros(1, 1), torch.zeros(1, 1)),
                                  reason=f"native kernel: {native.status(row_kernels.KERNEL)}")


def _data(n: int, d: int, q: int, dtype: torch.dtype, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randn(n, d, generator=generator, dtype=torch.float64)
    ys = torch.randn(q, d, generator=generator, dtype=torch.float64) / math.sqrt(d)
    return rows.to(dtype), rows.T.contiguous().to(dtype), ys.to(dtype)


def _exact(rows, rows_t, ys) -> torch.Tensor:
    return row_kernels.composite(rows.double(), rows_t.double(), ys.double())


# (rows, features, points): ESJ's shape on ijcnn1; a row count below one block; tails after whole
# blocks; feature and point counts that split into every tile width; one row, one feature.
SHAPES = [(40_000, 22, 11), (100, 5, 1), (513, 30, 13), (1_000, 7, 2), (257, 123, 5), (1, 1, 1), (300, 1, 7)]


@needs_native
@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-14), (torch.float32, 1e-6)])
@pytest.mark.parametrize("n, d, q", SHAPES)
def test_native_kernel_gives_the_composite_values(n, d, q, dtype, tolerance):
    rows, rows_t, ys = _data(n, d, q, dtype)
    got = row_kernels.sigmoid_row_mean(rows, rows_t, ys)
    assert got.shape == (q, d) and got.dtype == dtype
    difference = float((got.double() - _exact(rows, rows_t, ys)).abs().max())
    assert difference <= tolerance, f"max abs difference {difference:.1e}"


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_native_sigmoid_is_accurate_over_the_whole_range(dtype):
    """Margins from −100 to 100 (both clamps, the exponent's whole range) through the vector
    path: one block of 256 rows, all zero but the first, a one, so that each point's output is
    its weight σ(−z) / 256 with no rounding of the sum."""
    rows = torch.zeros(256, 1, dtype=dtype)
    rows[0] = 1
    margins = torch.linspace(-100, 100, 4_001, dtype=dtype)[:, None]
    got = 256 * row_kernels.sigmoid_row_mean(rows, rows.T.contiguous(), margins)[:, 0].double()
    exact = torch.sigmoid(-margins[:, 0].double())
    assert float((got - exact).abs().max()) <= (1e-16 if dtype == torch.float64 else 1e-7)
    inside = margins[:, 0].abs() <= 80  # the relative error where the weight is a normal number
    relative = ((got - exact).abs() / exact)[inside]
    assert float(relative.max()) <= (1e-15 if dtype == torch.float64 else 5e-7)


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_nan_reaches_the_output(dtype):
    rows, rows_t, ys = _data(600, 4, 3, dtype)
    ys[1, 2] = float("nan")
    got = row_kernels.sigmoid_row_mean(rows, rows_t, ys)
    assert got[1].isnan().all() and not got[[0, 2]].isnan().any()


def test_vmap_folds_the_batch_into_the_points():
    rows, rows_t, ys = _data(700, 6, 11, torch.float64)
    one_point = lambda y: row_kernels.sigmoid_row_mean(rows, rows_t, y.reshape(1, -1)).reshape(-1)  # noqa: E731
    batched = torch.vmap(one_point)(ys)
    assert float((batched - _exact(rows, rows_t, ys)).abs().max()) <= 1e-14


def test_gradient_is_the_composite_gradient():
    rows, rows_t, ys = _data(200, 4, 3, torch.float64)
    assert torch.autograd.gradcheck(lambda y: row_kernels.sigmoid_row_mean(rows, rows_t, y),
                                    (ys.clone().requires_grad_(),))


def test_without_the_native_kernel_the_op_runs_the_composite(monkeypatch):
    monkeypatch.setenv(native.NATIVE_ENV, "0")
    native.reset()
    try:
        assert native.status(row_kernels.KERNEL).startswith("off")
        rows, rows_t, ys = _data(300, 5, 2, torch.float64)
        assert not row_kernels.uses_native(rows_t, ys)
        assert torch.equal(row_kernels.sigmoid_row_mean(rows, rows_t, ys), row_kernels.composite(rows, rows_t, ys))
    finally:
        native.reset()


def test_a_missing_compiler_is_reported_not_raised(monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("BENCHOPT_BILEVEL_CACHE", str(tmp_path / "cache"))
    native.reset()
    try:
        status = native.status(row_kernels.KERNEL)
        assert status.startswith("not available: no C++ compiler"), status
        assert native.library(row_kernels.KERNEL) is None
    finally:
        native.reset()


def test_a_compiler_error_is_reported_in_one_line(monkeypatch, tmp_path):
    fake = tmp_path / "fake-c++"
    fake.write_text('#!/bin/sh\nif [ "$1" = --version ]; then echo "fake 1.0"; exit 0; fi\n'
                    'echo "sigmoid_row_mean.cpp:1:1: error: boom" >&2; exit 1\n')
    fake.chmod(0o755)
    monkeypatch.setenv("CXX", str(fake))
    monkeypatch.setenv("BENCHOPT_BILEVEL_CACHE", str(tmp_path / "cache"))
    native.reset()
    try:
        status = native.status(row_kernels.KERNEL)
        assert status == "not available: fake-c++ failed on sigmoid_row_mean.cpp: sigmoid_row_mean.cpp:1:1: error: boom"
        assert not list((tmp_path / "cache" / "native").iterdir())  # no half-written library
    finally:
        native.reset()


@needs_native
def test_rows_record_the_native_kernels_a_logreg_run_loaded():
    from benchopt_bilevel.provenance import provenance

    problem = build_problem("logreg", torch.float64, n_train_max=640, batch_size=32)
    Oracles(problem).grad_inner_y(problem.x0(), problem.y0(), None)  # the full batch: the op
    assert row_kernels.KERNEL in provenance(torch.device("cpu"))["native_kernels"].split(",")


@needs_native
def test_a_build_is_cached_per_source_and_host(monkeypatch, tmp_path):
    monkeypatch.setenv("BENCHOPT_BILEVEL_CACHE", str(tmp_path))
    path = native.build(row_kernels.KERNEL)
    assert path.parent == tmp_path / "native" and path.is_file()
    stamp = path.stat().st_mtime_ns
    assert native.build(row_kernels.KERNEL) == path and path.stat().st_mtime_ns == stamp  # no rebuild
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary left


@needs_native
def test_esj_library_on_logreg_calls_the_kernel_and_gives_the_eager_iterates(tmp_path):
    """ESJ's Q + 1 runs on the full batch call the op from inside the library's while_loops
    (float64, small logreg): the iterates must equal the eager steps, which call the same op."""
    problem = build_problem("logreg", torch.float64, n_train_max=640, batch_size=32)
    solver = get_solver("esj")(n_inner_steps=3, n_directions=4)
    state = start_state(solver, problem)
    calls = []
    original = row_kernels._native_function

    def counting(rows_t, ys):
        calls.append(tuple(ys.shape))
        return original(rows_t, ys)

    chunk = FastChunk(solver, Oracles(problem), torch.device("cpu"), torch.float64, tmp_path)
    chunk(dict(state), 1)  # builds (and checks its first steps against eager ones)
    assert chunk.cache_hit is False and not chunk.note
    row_kernels._native_function = counting  # from here on only the library runs
    try:
        got = chunk(dict(state), 3)
    finally:
        row_kernels._native_function = original
    # per step: the inner runs' 3 calls of Q + 1 = 5 points, then the outer gradient's one point
    assert calls == [(5, problem.dim_y)] * 3 + [(1, problem.dim_y)] * 1 + [(5, problem.dim_y)] * 3 + [(1, problem.dim_y)] + \
        [(5, problem.dim_y)] * 3 + [(1, problem.dim_y)]
    expected = eager_steps(solver, problem, dict(state), 3)
    for key in ("x", "y"):
        assert float((got[key] - expected[key]).abs().max()) <= 1e-12, key
