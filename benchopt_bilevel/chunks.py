"""Chunks of steps: `chunk(state, n) -> state`, eager or compiled.

A chunk is what the runner times between two clock reads. Compiled, it is `torch.compile` of
the step (Inductor's C++ wrapper on CPU, CUDA graphs on GPU) or of `unroll` consecutive steps as
one graph.

The fast chunk (`FastChunk`, CPU) runs n steps as ONE call of a library built ahead of time by
AOTInductor from the solver's exported loop (`fast.py`), taken from or added to the on-disk build
cache (`build_cache.py`) on its first call.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from . import build_cache, fast
from .oracles import Oracles
from .solver import Solver, State

Chunk = Callable[[State, int], State]


def compiles(solver: Solver, compile: bool) -> bool:
    """Whether `solver`'s chunks are compiled when `compile` is asked: never for a `host_side`
    step (Python on the host: dynamo would break its graph at every call), which runs eager."""
    return compile and solver.host_side is None


def eager_note(solver: Solver) -> str:
    """The note a compiled run of a host-side solver carries: it ran eager, and why."""
    return f"ran eager although --compile was asked: host-side step ({solver.host_side})"


def make_chunk(solver: Solver, oracles: Oracles, compile: bool, device: torch.device,
               unroll: int = 1) -> Chunk:
    """`chunk(state, n) -> state` running n steps, compiled when asked.

    By default the compiled unit is one step, looped in Python: one step compiles in seconds and
    the C++ wrapper (CPU) or a CUDA graph (GPU) removes the per-op overhead inside it. What is
    left is the per-call cost of a compiled function (guards, wrapper: ~35 µs on a 2-core CPU),
    which dominates small problems (SOBA on ijcnn1: ~100 µs per compiled step). `unroll` > 1
    compiles that many consecutive steps as one graph: the call cost is shared, and compilation
    grows with the graph (SOBA on ijcnn1, 8 steps: 24 µs per step after ~100 s of compilation,
    docs/compile.md). A chunk then runs n // unroll compiled calls; the runner asks for
    multiples of `unroll`, other remainders run as eager steps (the same numbers: steps are pure
    and their randomness is counter-based).

    On the CPU, `FastChunk` (the fast path, `--fast`) runs a whole chunk as one library call,
    whose own cost is a few µs.

    A `host_side` solver's chunks are eager whatever is asked (`compiles`).
    """
    compile = compiles(solver, compile)
    step, unroll = solver.step, unroll if compile else 1
    if compile:
        if device.type == "cpu":
            import torch._inductor.config as inductor_config

            inductor_config.cpp_wrapper = True  # the C++ wrapper removes Python from the step
        # One compilation per cell: without a reset, every cell of a process would share dynamo's
        # cache for this function (and its recompile limit), recompiling inside the timed loop.
        torch._dynamo.reset()

        def steps(oracles_: Oracles, state: State) -> State:
            for _ in range(unroll):
                state = solver.step(oracles_, state)
            return state

        step = torch.compile(steps, fullgraph=False, mode="reduce-overhead" if device.type == "cuda" else None)

    graphs = compile and device.type == "cuda"

    def chunk(state: State, n: int) -> State:
        for _ in range(n // unroll):
            if graphs:  # a CUDA graph's outputs live in its pool until its next replay: a new step
                # begins, and the state leaves the pool before it is fed back
                torch.compiler.cudagraph_mark_step_begin()
                state = {k: v.clone() for k, v in step(oracles, state).items()}
            else:
                state = step(oracles, state)
        for _ in range(n % unroll):
            state = solver.step(oracles, state)
        return state

    return chunk


def first_line(error: BaseException) -> str:
    """'TypeError: the first line of the message' (export errors run to pages)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


# Before a library is used, CHECK_STEPS of its steps are compared with as many eager steps from
# the same state: a library can build, load and run and still compute something else (seen with
# AOTInductor on SUSTAIN and BiAdam, whose exported graphs match eager to round-off; docs/compile.md).
# The tolerance, relative to the entry's size, is √ε of the dtype: far above the reassociation
# differences of a correct build after two steps (≤ 1e-15 in float64, ~1e-7 in float32), far
# below the wrong build's (2e-3 relative after one step).
CHECK_STEPS = 2


def library_mismatch(got: State, expected: State) -> str:
    """Why a library's state `got` is not the eager `expected` ("" when it is, within √ε)."""
    for k, value in expected.items():
        if not value.is_floating_point():
            if not torch.equal(got[k], value):
                return f"the built library's {k} differs from eager steps' after {CHECK_STEPS} steps"
            continue
        if not value.numel():
            continue
        difference = float((got[k].to(value.dtype) - value).abs().max())
        scale = max(1.0, float(value.abs().max()))
        tolerance = torch.finfo(value.dtype).eps ** 0.5
        if not difference <= tolerance * scale:  # NaN fails too
            return (f"the built library's {k} differs from eager steps' by {difference:.1e} after "
                    f"{CHECK_STEPS} steps (tolerance {tolerance * scale:.1e})")
    return ""


class FastChunk:
    """`chunk(state, n) -> state` as one call of a fast library (`fast.py`).

    The first call (the runner's warm-up, on a copy of the state, so the build lands in
    `warmup_time`) loads the library from the build cache or exports and builds it there;
    `cache_hit` then says which. If export, build or load fails, or the library's first steps
    are not the eager ones (`library_mismatch`), the chunk runs eager steps from then on and
    `note` says why (the run goes on: the fast path is an optimization, never a
    reason for an error row). CPU only: AOTInductor's library runs on the host; on CUDA the path
    is `--compile` (CUDA graphs).
    """

    def __init__(self, solver: Solver, oracles: Oracles, device: torch.device,
                 dtype: torch.dtype | None = None, directory: Path | None = None) -> None:
        self.solver, self.oracles, self.device, self.directory = solver, oracles, device, directory
        self.dtype = dtype
        self.cache_hit: bool | None = None
        self.note = ""
        self._steps: Chunk | None = None

    def __call__(self, state: State, n: int) -> State:
        if self._steps is None:
            self._steps = self._prepare(state)
        return self._steps(state, n)

    def _prepare(self, state: State) -> Chunk:
        solver, oracles = self.solver, self.oracles
        try:
            if solver.host_side is not None:
                raise TypeError(f"host-side step ({solver.host_side})")
            keys = list(state)
            dtype = self.dtype or next((v.dtype for v in state.values() if v.is_floating_point()), None)
            identity = build_cache.build_identity(solver, oracles.problem, state, dtype, self.device)

            def build(path: str) -> None:
                fast.build_library(fast.export_steps(solver, oracles, state), path)

            loaded = build_cache.get_or_build(identity, keys, build, fast.load_library, self.directory)
            steps = fast.steps_function(loaded.runner, solver, loaded.keys)
            # A library that loads but cannot run, or computes something else, falls back here.
            eager = make_chunk(solver, oracles, False, self.device)
            mismatch = library_mismatch(steps(dict(state), CHECK_STEPS), eager(dict(state), CHECK_STEPS))
            if mismatch:
                self.note = f"fast path unavailable: {mismatch}; ran eager"
                return eager
        except Exception as error:  # noqa: BLE001 - any failure of the fast path falls back to eager
            self.note = f"fast path unavailable: {first_line(error)}; ran eager"
            return make_chunk(solver, oracles, False, self.device)
        self.cache_hit = loaded.hit
        return steps
