"""Speed of the engine on the embedded quadratic (n = 1024, d = 100, batch 64, float32, CPU).

Run with `make speed` (pytest-benchmark; not part of the test suite: timings on shared
machines are noisy, so targets here are ratios measured within one run).

- per-step time of each default solver (eager), with its oracle-normalized cost in extra_info;
- the runner's overhead: its recorded solver time for N steps against a bare loop of the same N
  steps (target ≤ 1.02: the harness adds chunking, not work);
- eager against a compiled chunk for SOBA (compile time reported, not hidden);
- the per-call cost of a two-add function: eager, torch.compile, and an AOTInductor library
  built and loaded as the fast path builds and loads its libraries (`fast.build_library`,
  `fast.load_library`).
"""
from __future__ import annotations

import time

import pytest
import torch

from benchopt_bilevel import fast, rng
from benchopt_bilevel.benchmark import DEFAULT_SOLVERS
from benchopt_bilevel.clock import Clock
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.profiling import profile_step, time_oracles
from benchopt_bilevel.registry import get_problem, get_solver
from benchopt_bilevel.runner import Cell, RunConfig, run_cell

STEPS = {"soba": 300, "aid-cg": 20}  # ~1 s of steps each


@pytest.fixture(scope="module")
def problem():
    cls = get_problem("quadratic")
    return cls(cls.Params(), torch.Generator().manual_seed(0)).to("cpu", torch.float32)


@pytest.fixture(scope="module")
def oracle_times(problem):
    return time_oracles(Oracles(problem), problem.x0(), problem.y0(), Clock(torch.device("cpu")))


def _bare_loop(problem, name: str, steps: int) -> float:
    """Seconds for `steps` eager steps with nothing around them."""
    oracles, solver = Oracles(problem), get_solver(name)()
    with torch.no_grad():
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0, torch.device("cpu")))
        state = solver.step(oracles, state)
        start = time.perf_counter()
        for _ in range(steps):
            state = solver.step(oracles, state)
        return time.perf_counter() - start


@pytest.mark.parametrize("name", DEFAULT_SOLVERS)
def test_step_time(benchmark, problem, oracle_times, name):
    oracles, solver = Oracles(problem), get_solver(name)()
    with torch.no_grad():
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0, torch.device("cpu")))
        benchmark.pedantic(lambda: solver.step(oracles, state), rounds=20, iterations=1, warmup_rounds=2)
    result = profile_step(Cell("quadratic", name), steps=10, oracle_times=oracle_times)
    benchmark.extra_info.update(oracle_ms=result.modeled_ms, normalized=result.normalized)


@pytest.mark.parametrize("name", ["soba", "aid-cg"])
def test_runner_overhead(benchmark, problem, name):
    """Recorded solver time of a runner cell vs a bare loop of the same number of steps."""
    config = RunConfig(max_steps=STEPS[name], max_time=600, n_evals=5)

    def measure():
        recorded = run_cell(Cell("quadratic", name), config).iloc[-1]
        bare = _bare_loop(problem, name, int(recorded["step"]))
        return float(recorded["time"]) / bare

    ratio = benchmark.pedantic(measure, rounds=3, iterations=1)
    benchmark.extra_info["recorded_over_bare"] = ratio
    assert ratio <= 1.02, f"the runner adds {100 * (ratio - 1):.1f}% to {name}'s step time"


def test_compiled_chunk(benchmark):
    """SOBA eager vs a compiled 32-step chunk: µs per step and the compile time, side by side."""
    rows = {}

    def measure():
        for compiled in (False, True):
            last = run_cell(Cell("quadratic", "soba"),
                            RunConfig(max_time=3.0, compile=compiled, chunk_steps=32, n_evals=5)).iloc[-1]
            assert last["status"] == "ok", last["message"]
            rows[compiled] = (1e6 * last["time"] / last["step"], last["warmup_time"])
        return rows

    benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info.update(eager_us=rows[False][0], compiled_us=rows[True][0], compile_s=rows[True][1],
                                speedup=rows[False][0] / rows[True][0])


def _two_adds(state):
    return {"t": state["t"] + 1, "x": state["x"] * 0.5 + 1.0}


class _TwoAdds(torch.nn.Module):
    """`_two_adds` over a flat list of tensors, the calling convention of a library's runner."""

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        state = _two_adds({"t": t, "x": x})
        return state["t"], state["x"]


def _library(state: dict, folder: str):
    """`_two_adds` exported and built into an AOTInductor library in `folder`, loaded."""
    with torch.no_grad():
        program = torch.export.export(_TwoAdds(), (state["t"].clone(), state["x"].clone()), strict=False)
    runner = fast.load_library(fast.build_library(program, f"{folder}/two_adds.pt2"))
    return lambda s: dict(zip(("t", "x"), runner([s["t"], s["x"]])))


@pytest.mark.parametrize("backend", ["eager", "inductor", "library"])
def test_call_overhead(benchmark, backend, tmp_path):
    """µs per call of a function of two adds: what a compiled step pays on top of its kernels
    (torch.compile: dynamo's guards and AOTAutograd's wrappers; library: the runner of an
    AOTInductor library, what a fast-path call pays once per chunk of n steps)."""
    import torch._dynamo
    import torch._inductor.config as inductor_config

    inductor_config.cpp_wrapper = True  # as the runner compiles on the CPU
    state = {"t": torch.zeros((), dtype=torch.int64), "x": torch.zeros(22)}
    torch._dynamo.reset()
    fn = {"eager": lambda: _two_adds, "inductor": lambda: torch.compile(_two_adds),
          "library": lambda: _library(state, str(tmp_path))}[backend]()
    with torch.no_grad():
        for _ in range(20):  # compiles (inductor) and warms up
            state = fn(state)
        result = benchmark(fn, state)
    assert int(result["t"]) == 21
    if benchmark.stats is not None:  # None under --benchmark-disable: one call, nothing timed
        benchmark.extra_info.update(us_per_call=1e6 * benchmark.stats.stats.mean)
