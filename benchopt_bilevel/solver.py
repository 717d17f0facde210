"""The solver contract: a method is `init / step / output` over a dict of tensors.

A solver instance is a method with fixed hyperparameters (its `Params`, whose defaults are the
paper's). The runner owns the loop, the clock and the results:

    state = solver.init(oracles, x0, y0, key)     # dict of tensors, must hold "x", "y", "key"
    state = solver.step(oracles, state)           # pure: no .item(), no branch on tensor values,
                                                  # batches drawn from state["key"]
    x, y = solver.output(state)

A step may expose its hypergradient estimate as state["hypergradient"]; the runner then reports
its error where the problem knows the exact one. Derivatives come only from `oracles`.
`solver.oracle_cost(facts)` declares the oracle calls of one step from the problem's static
facts (`ProblemFacts`, also `oracles.facts`).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from .facts import ProblemFacts
from .oracles import Oracles
from .problem import Problem

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class LogUniform:
    """A tuning dimension sampled log-uniformly in [low, high]."""

    low: float
    high: float

    def sample(self, u: float) -> float:
        return math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))


@dataclass(frozen=True)
class IntRange:
    """A tuning dimension sampled uniformly among the integers low..high."""

    low: int
    high: int

    def sample(self, u: float) -> int:
        return min(self.high, self.low + int(u * (self.high - self.low + 1)))


@dataclass(frozen=True)
class Choice:
    """A tuning dimension taking one of `values`."""

    values: tuple

    def sample(self, u: float) -> Any:
        return self.values[min(len(self.values) - 1, int(u * len(self.values)))]


class Solver:
    """Base class of every solver (one subclass per file in `solvers/`)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""  # one line
    reference: ClassVar[str] = ""  # the paper
    family: ClassVar[str] = ""
    stochastic: ClassVar[bool] = True
    needs_second_order: ClassVar[bool] = True
    handles_constraints: ClassVar[bool] = False
    # Why the method's fixed points are not the bilevel solution, for methods whose paper says
    # so (e.g. a biased surrogate); the conformance suite then checks that it stays finite and
    # bounded instead of reaching the target. None for every method that converges.
    biased: ClassVar[str | None] = None
    # Why `step` cannot be compiled with fullgraph=True (e.g. a data-dependent shape), for a
    # method that truly cannot; the conformance suite then expects its compilation to fail, so a
    # blocker that goes away is noticed. None for every method whose step compiles.
    compile_blocker: ClassVar[str | None] = None
    # Why `step` runs host-side code (a Python sampler proposing the next trial, a loop that stops
    # at a tolerance) instead of being a pure tensor function, for a method that is one. Such a
    # step is still a function of its input state (same state, same output, seeds drawn from
    # state["key"]) but reads tensor values and branches on them: it is never compiled (`run
    # --compile` runs it eager and says so in the run's message), and, its cost depending on
    # values, `oracle_cost` declares the most calls one step can make (the runner records the
    # calls counted). None for every method whose step is a pure tensor function.
    host_side: ClassVar[str | None] = None
    # Why the oracle calls of a step vary at random (e.g. a random Neumann length), for such a
    # method: `oracle_cost` then declares the expected calls, and the conformance suite compares
    # them with the mean over many steps instead of requiring equality.
    random_cost: ClassVar[str | None] = None
    # Float or int parameters that shape the step's graph (a count that sets a buffer's shape, a
    # branch on a value) and so stay constants of a fast build (`fast.py`); every other float or
    # int parameter enters the build as a tensor, so that one build serves every seed and trial.
    static_params: ClassVar[tuple[str, ...]] = ()
    # Parameters only `init` reads (how the state starts): the step's graph does not depend on
    # them, so they are not part of a fast build's identity (`fast.static_identity`). A run's
    # first steps are still checked against eager before its library is used (`chunks.py`).
    init_params: ClassVar[tuple[str, ...]] = ()
    # String parameters (a `Choice` of the search space) that enter a fast build as the index of
    # their value, so that a search drawing several values still builds once; the step must
    # branch on them with `linalg.switch` (the build holds every option; comparing the build's
    # value with a string raises). Other string parameters shape the build.
    input_choices: ClassVar[tuple[str, ...]] = ()
    # True for methods that restart y per batch and take f and g on the same batch.
    handles_episodes: ClassVar[bool] = False
    # Where the method departs from its paper (or from the reference benchmark) and why, one
    # sentence each; docs/solvers.md and the leaderboard show them. Defaults' provenance is
    # declared on the Params fields (`params.paper / reference / ours`).
    deviations: ClassVar[tuple[str, ...]] = ()
    # The method's name in the JAX reference benchmark (benchopt/benchmark_bilevel), e.g. "PZOBO",
    # and its parameter names mapped to ours (step_size -> step_inner, ...), so that its solver
    # specifications replay here; None when the reference has no such solver. A subclass does not
    # inherit its parent's: declare them in the class itself.
    reference_name: ClassVar[str | None] = None
    reference_params: ClassVar[dict[str, str]] = {}
    Params: ClassVar[type] = type("Params", (), {})
    # What `tune` searches: the method's own hyperparameters (step sizes, ratios, counts, and a
    # choice its paper makes part of the method, such as AmIGO's linear solver). An inner
    # optimizer other than the paper's (`inner=ai_sarah|srkc`) is a variant, not a dimension: a
    # tuned entry under the method's name runs the method as published, and a variant is tuned as
    # its own entry (`tune --solver "f2sa[inner=srkc]"`), with the whole trial budget.
    search_space: ClassVar[dict[str, LogUniform | IntRange | Choice]] = {}

    def __init__(self, params: Any = None, **overrides: Any) -> None:
        params = params if params is not None else self.Params()
        self.params = dataclasses.replace(params, **overrides) if overrides else params

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params})"

    # -- contract ---------------------------------------------------------------------------
    def skip(self, problem: Problem) -> str | None:
        """Why this solver cannot run on `problem`, or None when it can."""
        if self.needs_second_order and not problem.twice_differentiable:
            return f"{self.name} needs second-order oracles; {problem.name}'s inner problem is not twice differentiable"
        if getattr(problem, "episodic", False) and not self.handles_episodes:
            return (f"{self.name} carries y across steps and samples inner and outer batches "
                    f"independently; {problem.name} is episodic (each batch is a task whose inner "
                    "solution restarts from y_start, with f and g on the same batch)")
        if problem.constrained and not self.handles_constraints:
            return f"{self.name} does not handle a constrained lower level"
        return None

    def oracle_cost(self, facts: ProblemFacts) -> dict[str, float]:
        """Oracle calls per step by kind (the keys of `Oracles.calls`), averaged over a cycle, on a
        problem with these static facts."""
        raise NotImplementedError

    def cumulative_oracle_cost(self, facts: ProblemFacts, steps: int) -> dict[str, float]:
        """Oracle calls of the first `steps` steps (expected ones for a `random_cost` method);
        `steps` times `oracle_cost` unless the per-step cost changes with t."""
        return {kind: count * steps for kind, count in self.oracle_cost(facts).items()}

    def init(self, oracles: Oracles, x: torch.Tensor, y: torch.Tensor, key: torch.Tensor) -> State:
        """The starting state; by default `initial_state` with nothing more."""
        return self.initial_state(x, y, key)

    def step(self, oracles: Oracles, state: State) -> State:
        raise NotImplementedError

    def output(self, state: State) -> tuple[torch.Tensor, torch.Tensor]:
        return state["x"], state["y"]

    # -- helpers for subclasses -----------------------------------------------------------------
    @staticmethod
    def initial_state(x: torch.Tensor, y: torch.Tensor, key: torch.Tensor, **extra: torch.Tensor) -> State:
        """x, y, key, a zero hypergradient estimate (none formed yet), then the method's `extra`."""
        return {"x": x, "y": y, "key": key, "hypergradient": torch.zeros_like(x), **extra}

    @staticmethod
    def counter(like: torch.Tensor) -> torch.Tensor:
        """A step counter t = 0 as a tensor on the device of `like` (float: feeds schedules)."""
        return torch.zeros((), dtype=like.dtype, device=like.device)
