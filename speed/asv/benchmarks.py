"""asv benchmarks: per-step time, time and oracle calls to target, peak memory, for every
registered solver on a small well-conditioned quadratic (the conformance
problem). Run with `asv run --quick --python=same --environment existing` (see asv.conf.json).

Each suite is parametrized by solver name, so a change that slows one solver shows as that
solver's line in `asv compare`.
"""
import math
import os

import torch

from benchopt_bilevel import rng
from benchopt_bilevel import registry
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import get_problem, get_solver
from benchopt_bilevel.runner import Cell, RunConfig, run_cell

PROBLEM = dict(n_inner=64, n_outer=64, dim_x=5, dim_y=5, batch_size=8, noise=0.1,
               mu_inner=5.0, L_inner=8.0, mu_outer=0.5, L_outer=1.0)
TARGET = 1e-2  # relative suboptimality, as in the conformance suite
MAX_STEPS = 1000
# Every registered solver, so a slowdown anywhere shows; BENCHOPT_BILEVEL_ASV_SOLVERS=a,b narrows
# the set (the CI smoke test uses two).
SOLVERS = [name for name in os.environ.get("BENCHOPT_BILEVEL_ASV_SOLVERS", "").split(",") if name] \
    or sorted(registry.solvers())


def _to_target(name):
    config = RunConfig(max_steps=MAX_STEPS, max_time=60, n_evals=20, dtype="float64", target=TARGET,
                       stop_at_target=True)
    return run_cell(Cell("quadratic", name, PROBLEM, {}, seed=0), config).iloc[-1]


class Step:
    """Wall time of one solver step (eager), batch sampling included."""

    params = SOLVERS
    param_names = ["solver"]

    def setup(self, name):
        torch.set_num_threads(1)
        problem_cls = get_problem("quadratic")
        params = problem_cls.Params(**PROBLEM)
        problem = problem_cls(params, torch.Generator().manual_seed(0)).to("cpu", torch.float64)
        self.oracles = Oracles(problem)
        self.solver = get_solver(name)()
        with torch.no_grad():
            self.state = self.solver.init(self.oracles, problem.x0(), problem.y0(), rng.make_key(0, torch.device("cpu")))

    def time_step(self, name):
        with torch.no_grad():
            self.solver.step(self.oracles, self.state)


class ToTarget:
    """Convergence on the small quadratic: tracked, so a slower or worse solver shows up."""

    params = SOLVERS
    param_names = ["solver"]
    timeout = 120

    def setup_cache(self):
        torch.set_num_threads(1)
        return {name: _to_target(name).to_dict() for name in SOLVERS}

    def track_time_to_target(self, finals, name):
        final = finals[name]
        reached = final["objective_relative_suboptimality"] <= TARGET
        return final["time"] if reached else math.nan

    track_time_to_target.unit = "seconds"

    def track_oracle_calls_to_target(self, finals, name):
        final = finals[name]
        reached = final["objective_relative_suboptimality"] <= TARGET
        return final["oracle_total"] if reached else math.nan

    track_oracle_calls_to_target.unit = "oracle calls"

    def track_oracle_calls_per_step(self, finals, name):
        final = finals[name]
        return final["oracle_total"] / max(1, final["step"])

    track_oracle_calls_per_step.unit = "oracle calls"


class Memory:
    """Peak resident memory of a short run (problem, solver state, evaluation)."""

    params = SOLVERS
    param_names = ["solver"]

    def peakmem_run(self, name):
        run_cell(Cell("quadratic", name, PROBLEM, {}, seed=0),
                 RunConfig(max_steps=50, max_time=60, n_evals=3, dtype="float64"))


class Scale:
    """`load_results`, `show`, `score` and `publish` on 1,000 synthetic runs (speed/scale_data.py):
    wall time and peak memory of each, in a fresh process. The 10,000-run figures come from
    speed/test_bench_scale.py (minutes to build). BENCHOPT_BILEVEL_ASV_SCALE_RUNS=N changes the
    size; 0 skips the suite (the test suite's smoke run does)."""

    runs = int(os.environ.get("BENCHOPT_BILEVEL_ASV_SCALE_RUNS", "1000"))

    params = ["load", "show", "score", "publish"]
    param_names = ["operation"]
    timeout = 600
    number = 1
    repeat = 1

    def setup(self, figures, operation):
        if not self.runs:
            raise NotImplementedError("BENCHOPT_BILEVEL_ASV_SCALE_RUNS=0")

    def setup_cache(self):
        if not self.runs:
            return {}
        import sys
        import tempfile
        from pathlib import Path

        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        import scale_data

        directory = Path(tempfile.mkdtemp(prefix="benchopt-bilevel-scale-")) / f"runs-{self.runs}"
        scale_data.build(self.runs, directory)
        return {operation: scale_data.measure(operation, directory) for operation in self.params}

    def track_seconds(self, figures, operation):
        return figures[operation]["seconds"]

    track_seconds.unit = "seconds"

    def track_peak_memory(self, figures, operation):
        return figures[operation]["peak_bytes"]

    track_peak_memory.unit = "bytes"


class FastStep:
    """SOBA's fast path on logreg (ijcnn1, batch 64, float32, one thread): the exported loop of
    `benchopt_bilevel/fast.py`, built with AOTInductor once in setup_cache (the build, a minute,
    is not timed), timed in calls of CHUNK steps (the JAX reference's epochs are 128 steps).
    speed/test_bench_fast.py puts these figures next to JAX's and the build times."""

    CHUNK = 128
    timeout = 900
    # BENCHOPT_BILEVEL_ASV_FAST=0 skips the suite (the test suite's smoke run: a build is a minute).
    enabled = os.environ.get("BENCHOPT_BILEVEL_ASV_FAST", "1") != "0"

    def setup_cache(self):
        if not self.enabled:
            return ""
        import tempfile  # noqa: PLC0415
        from pathlib import Path  # noqa: PLC0415

        from benchopt_bilevel import fast  # noqa: PLC0415

        torch.set_num_threads(1)
        solver, oracles, state = self._soba_on_ijcnn1()
        package = str(Path(tempfile.mkdtemp(prefix="benchopt-bilevel-asv-fast-")) / "soba.pt2")
        fast.build_library(fast.export_steps(solver, oracles, state), package)
        return package

    @staticmethod
    def _soba_on_ijcnn1():
        from benchopt_bilevel.fixtures import build_problem  # noqa: PLC0415

        problem = build_problem("logreg", torch.float32)
        oracles, solver = Oracles(problem), get_solver("soba")()
        with torch.no_grad():
            state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0))
        return solver, oracles, {k: v.clone() for k, v in state.items()}

    def setup(self, package):
        if not self.enabled:
            raise NotImplementedError("BENCHOPT_BILEVEL_ASV_FAST=0")
        from benchopt_bilevel import fast  # noqa: PLC0415

        torch.set_num_threads(1)
        solver, _, self.state = self._soba_on_ijcnn1()
        self.chunk = fast.steps_function(fast.load_library(package), solver, list(self.state))
        self.state = self.chunk(self.state, self.CHUNK)  # first call: loads, allocates

    def time_chunk_of_128_steps(self, package):
        self.state = self.chunk(self.state, self.CHUNK)

    def track_us_per_step(self, package):
        """Best of 20 calls of CHUNK steps, in µs per step (asv's time_ figure is per call)."""
        import time  # noqa: PLC0415

        best = math.inf
        for _ in range(20):
            start = time.perf_counter()
            self.state = self.chunk(self.state, self.CHUNK)
            best = min(best, time.perf_counter() - start)
        return best / self.CHUNK * 1e6

    track_us_per_step.unit = "µs"


class RowPass:
    """ESJ's inner step on ijcnn1's shapes (40,000 rows, 22 features, 11 points, float32, one
    thread): the full-batch logistic gradient's data term as the one-pass op computes it
    (`row_kernels.sigmoid_row_mean`, the native kernel where it builds) and in the three library
    kernels it replaced (`row_kernels.composite`). speed/full_batch_products.py prints both with
    the bound at the sgemm's rate."""

    params = ["one_pass", "library_kernels"]
    param_names = ["kernel"]

    def setup(self, kernel):
        from benchopt_bilevel import row_kernels  # noqa: PLC0415

        torch.set_num_threads(1)
        generator = torch.Generator().manual_seed(0)
        self.rows = torch.randn(40_000, 22, generator=generator)
        self.rows_t = self.rows.T.contiguous()
        self.ys = 0.1 * torch.randn(11, 22, generator=generator)
        self.function = row_kernels.sigmoid_row_mean if kernel == "one_pass" else row_kernels.composite
        self.function(self.rows, self.rows_t, self.ys)  # builds or loads the native kernel

    def time_inner_step(self, kernel):
        self.function(self.rows, self.rows_t, self.ys)
