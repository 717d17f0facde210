"""What one run is: a cell (problem, solver, their parameters, a seed) and how it is run
(`RunConfig`); resolving their names and building the problem.

Everything a user can get wrong here (a name, a parameter, a device) is a UserError raised
before anything runs.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import torch

from .errors import UserError
from .params import build_params, params_to_dict
from .problem import Problem
from .registry import get_problem, get_solver
from .solver import Solver

DTYPES = {"float32": torch.float32, "float64": torch.float64}
# How uncompiled steps run (`RunConfig.step_path`): eager PyTorch; "fast", n steps per call of a
# library built once and cached on disk (`fast.py`, CPU); "auto", fast when the eager warm-up
# step costs less than `FAST_SECONDS_PER_CALL` per oracle call (the runner's rule), else eager.
STEP_PATHS = ("eager", "fast", "auto")
# Seconds of an eager step per declared oracle call (a full-batch call counting as the blocks it
# covers). Eager PyTorch pays tens of µs of dispatch per oracle call: at ~70 µs per call (ijcnn1)
# the step is dispatch and the fast path runs it 15-37 times faster; at ~5 ms per call (the
# literature-size quadratic) it is arithmetic and the library gains 10% for a build of minutes
# (docs/compile.md). Per call rather than per step, so that a solver whose step is a long loop of
# cheap calls (SRBA's period) counts as what it is.
FAST_SECONDS_PER_CALL = 2.5e-4


@dataclass
class RunConfig:
    """How one cell is run (everything but the problem, the solver and the seed)."""

    max_time: float = 10.0  # seconds of timed steps
    max_steps: int | None = None
    n_evals: int = 25  # evaluation points, log-spaced
    device: str = "cpu"
    dtype: str = "float32"
    compile: bool = False
    chunk_steps: int = 32  # most steps between two clock reads
    compile_steps: int = 1  # compiled: steps unrolled into one graph (chunks are multiples of it)
    # Without --compile: "eager", "fast" (CPU) or "auto" (fast when the step is cheap), STEP_PATHS.
    step_path: str = "eager"
    target: float | None = None  # overrides the problem's target value
    stop_at_target: bool = False
    blowup: float = 1e8  # diverged when the divergence metric exceeds blowup * max(1, initial)

    def __post_init__(self) -> None:
        if not self.max_time > 0:
            raise UserError(f"max_time must be positive, got {self.max_time}")
        if self.max_steps is not None and self.max_steps < 1:
            raise UserError(f"max_steps must be at least 1, got {self.max_steps}")
        if self.n_evals < 2:
            raise UserError(f"n_evals must be at least 2, got {self.n_evals}")
        if self.chunk_steps < 1:
            raise UserError(f"chunk_steps must be at least 1, got {self.chunk_steps}")
        if self.compile_steps < 1:
            raise UserError(f"compile_steps must be at least 1, got {self.compile_steps}")
        if self.compile_steps > 1 and not self.compile:
            raise UserError("compile_steps > 1 unrolls steps into a compiled graph: it needs --compile")
        if self.step_path not in STEP_PATHS:
            raise UserError(f"unknown step path {self.step_path!r}; choose one of {', '.join(STEP_PATHS)}")
        if self.step_path == "fast" and self.compile:
            raise UserError("the fast path and --compile are two ways to compile steps: choose one")
        if self.step_path == "fast" and self.device.startswith("cuda"):
            raise UserError("the fast path (AOTInductor library) is for the CPU; on a GPU, --compile records "
                            "CUDA graphs")
        if self.dtype not in DTYPES:
            raise UserError(f"unknown dtype {self.dtype!r}; choose one of {', '.join(DTYPES)}")


@dataclass
class Cell:
    """What to run: a problem and a solver with their parameters, and a seed."""

    problem: str
    solver: str
    problem_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    solver_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    seed: int = 0


def resolve_device(name: str) -> torch.device:
    """The torch device for `name`; a clear error when CUDA is asked for and absent."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was requested but no CUDA GPU is visible (torch.cuda.is_available() is False)")
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"unsupported device {name!r}; use cpu or cuda")
    return device


def validate(cell: Cell) -> tuple[type[Problem], Any, type[Solver], Any]:
    """Resolve names and parameters (UserError on bad input), before anything runs."""
    problem_cls = get_problem(cell.problem)
    problem_params = build_params(problem_cls.Params, cell.problem_params, f"problem {cell.problem!r}")
    solver_cls = get_solver(cell.solver)
    solver_params = build_params(solver_cls.Params, cell.solver_params, f"solver {cell.solver!r}")
    return problem_cls, problem_params, solver_cls, solver_params


_PROBLEM_CACHE: dict[tuple, Problem] = {}


def build_problem(problem_cls: type[Problem], params: Any, device: torch.device, dtype: torch.dtype) -> Problem:
    """Build (or reuse) the problem: its data depend only on its parameters and data seed.

    The last problem built is kept, so the cells of a benchmark that share a problem build it
    once. Problems are never modified by solvers (steps are pure), so sharing is safe.
    """
    cache_key = (problem_cls, json.dumps(params_to_dict(params), sort_keys=True), str(device), dtype)
    if cache_key not in _PROBLEM_CACHE:
        _PROBLEM_CACHE.clear()  # keep one: literature-size problems take hundreds of MB
        data_seed = getattr(params, "seed", 0)
        problem = problem_cls(params, torch.Generator().manual_seed(data_seed)).to(device, dtype)
        _PROBLEM_CACHE[cache_key] = problem
    return _PROBLEM_CACHE[cache_key]
