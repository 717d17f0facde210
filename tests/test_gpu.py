"""On a CUDA device: the same iterates as on the CPU, a synchronized clock, the peak-memory column.

Marked `gpu`: conftest skips them, with the reason, where torch.cuda.is_available() is False.
"""
from __future__ import annotations

import time

import pytest
import torch

from benchopt_bilevel import rng
from benchopt_bilevel.clock import Clock
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import get_solver
from benchopt_bilevel.runner import Cell, RunConfig, run_cell

from conftest import WELL_CONDITIONED, build_quadratic

pytestmark = pytest.mark.gpu


def _soba_iterates(device: str, n_steps: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    problem = build_quadratic(torch.float64, device)
    assert problem.device == torch.empty(0, device=device).device and problem.dtype == torch.float64
    solver, oracles = get_solver("soba")(), Oracles(problem)
    with torch.no_grad():
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0, problem.device))
        for _ in range(n_steps):
            state = solver.step(oracles, state)
    x, y = solver.output(state)
    assert x.device == problem.device
    return x.cpu(), y.cpu()


def test_soba_takes_the_same_float64_steps_on_cpu_and_cuda():
    """Counter-based keys draw the same batches on both devices; only round-off may differ."""
    x_cpu, y_cpu = _soba_iterates("cpu")
    x_gpu, y_gpu = _soba_iterates("cuda")
    assert float(torch.linalg.vector_norm(x_cpu)) > 1e-3  # the iterates moved from x0 = 0
    torch.testing.assert_close(x_gpu, x_cpu, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(y_gpu, y_cpu, rtol=1e-9, atol=1e-12)


def test_clock_waits_for_queued_kernels():
    device = torch.device("cuda")
    torch.cuda._sleep(1000)  # warm the kernel up
    torch.cuda.synchronize(device)
    clock = Clock(device)
    clock.start()
    launched = time.perf_counter()
    torch.cuda._sleep(200_000_000)  # ~0.1 s of GPU cycles, queued asynchronously
    launch_time = time.perf_counter() - launched
    elapsed = clock.stop()
    assert elapsed > 0.02, f"the clock read {elapsed:.4f} s: it did not wait for the kernel"
    assert launch_time < elapsed / 2, "the launch itself blocked: the check would prove nothing"


def test_run_on_cuda_records_peak_memory():
    table = run_cell(Cell("quadratic", "soba", WELL_CONDITIONED, {}, seed=0),
                     RunConfig(max_steps=10, n_evals=2, device="cuda", dtype="float64"))
    final = table.iloc[-1]
    assert final["status"] == "ok", final["message"]
    assert (table["peak_memory_bytes"] > 0).all()
