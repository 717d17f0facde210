"""The conformance rules a solver must meet, as functions of its class: what the repository's
conformance tests assert on every registered solver and what `benchopt-bilevel check` runs on a
solver file kept outside the repository (the two call the same functions, so they never drift).

Each rule takes a `Solver` subclass and returns a `Result` (name, passed, message, hint); it
never raises. The rules run on the small well-conditioned quadratic of `fixtures.py`:

- metadata: a one-line `description`, a `reference`, a module docstring with "Oracle cost per
  step" and "Reference", `search_space` keys that are fields of `Params`;
- pure-step: `step` leaves its input state, the solver and its parameters unchanged and gives
  the same output twice from one state;
- oracle-cost: the oracle calls counted over two cost periods equal `oracle_cost(facts)` (at
  most, kind by kind, for a `host_side` step, whose declared cost is a cap);
- determinism: the same seed gives identical iterates, another seed other batches (stochastic);
- dtype-device: float32 and float64 and the device are kept in the output and the state;
- no-nan: 20 float32 steps with the default parameters stay finite;
- convergence (slow): with its defaults, float64, relative suboptimality <= CONVERGENCE_TOLERANCE
  within CONVERGENCE_STEPS steps through `run_cell`, or below BIASED_BOUND for a `biased` method,
  or below HOST_SIDE_BOUND for a `host_side` one (a black-box search: one trial per step);
- compile (slow): `torch.compile(step, fullgraph=True, backend="aot_eager")` compiles once,
  never recompiles in the next COMPILED_CALLS calls and gives the eager iterates (see
  `check_compiled_step`); a `compile_blocker` means its compilation must fail; a `host_side`
  step is not compiled (`run --compile` runs it eager) and the rule says so.

A `host_side` step (Python on the host: a sampler, a loop to a tolerance) is held to the other
rules as they are: it is a function of its state (pure-step), of its seed (determinism), keeps
dtype and device and stays finite.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import math
import sys
from dataclasses import dataclass
from typing import Any, Callable

import torch

from . import rng
from .fixtures import WELL_CONDITIONED, build_quadratic
from .oracles import Oracles
from .registry import get_solver
from .solver import Solver, State

CONVERGENCE_STEPS = 1000
CONVERGENCE_TOLERANCE = 1e-2
BIASED_BOUND = 1e2  # a solver with `biased` set: relative suboptimality stays below this
# A `host_side` solver (a black-box search, one trial per step) within CONVERGENCE_STEPS trials:
# what uniform random search in the fixture's box ([-5, 5]^5) guarantees. Its best relative
# suboptimality after 1000 uniform draws (exact h, 4,000 Monte Carlo runs): median 0.131,
# 99th percentile 0.287, 99.9th 0.338; a search at rate N^(-2/d) is far from 1e-2 in d = 5.
HOST_SIDE_BOUND = 0.3

COMPILED_CALLS = 3  # calls after the compiling one, each must reuse its graph
SMALL = 2  # cap on integer parameters (loop counts, periods) in the compile rule
# aot_eager runs the same eager kernels as the eager step (bitwise equal with torch 2.13); 1e-12
# leaves room for a decomposition that reorders a float64 reduction in another torch version.
RTOL = ATOL = 1e-12


@dataclass(frozen=True)
class Result:
    """The outcome of one rule on one solver; `hint` says how to fix a failure."""

    name: str
    passed: bool
    message: str
    hint: str


class Violation(AssertionError):
    """A rule's check found the solver breaking it."""


def require(condition: bool, message: str) -> None:
    """Raise Violation(message) unless `condition` (an assert that `python -O` keeps)."""
    if not condition:
        raise Violation(message)


# name -> rule, in the order `check` prints them
RULES: dict[str, Callable[[type[Solver]], Result]] = {}
SLOW_RULES: set[str] = set()


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def rule(name: str, hint: str, slow: bool = False):
    """Turn `check(cls) -> message` (raising on a failure) into a rule returning a Result."""

    def decorate(check: Callable[[type[Solver]], str]) -> Callable[[type[Solver]], Result]:
        @functools.wraps(check)
        def run(cls: type[Solver]) -> Result:
            try:
                message = check(cls)
            except AssertionError as error:  # Violation, torch.testing.assert_close
                return Result(name, False, _first_line(error), hint)
            except Exception as error:  # noqa: BLE001 - a crashing solver fails the rule, with why
                return Result(name, False, f"{type(error).__name__}: {_first_line(error)}", hint)
            return Result(name, True, message, "")

        RULES[name] = run
        if slow:
            SLOW_RULES.add(name)
        return run

    return decorate


def run_steps(cls: type[Solver], problem, n_steps: int, seed: int = 0) -> tuple[Solver, Oracles, State]:
    """`n_steps` eager steps of `cls` with its defaults from `seed`; oracle counts exclude init."""
    solver = cls()
    oracles = Oracles(problem)
    with torch.no_grad():
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(seed, problem.device))
        oracles.reset_counts()
        for _ in range(n_steps):
            state = solver.step(oracles, state)
    return solver, oracles, state


# -- the rules ----------------------------------------------------------------------------------

@rule("metadata", "set a one-line `description`, a `reference`, search_space keys from Params; "
                  "the module docstring needs 'Oracle cost per step:' and 'Reference:'")
def check_metadata(cls: type[Solver]) -> str:
    require(bool(cls.description) and "\n" not in cls.description, "`description` must be one non-empty line")
    require(bool(cls.reference), f"{cls.name} must name its paper in `reference`")
    module = sys.modules.get(cls.__module__)
    module_doc = (module.__doc__ if module is not None else None) or ""
    require("Oracle cost per step" in module_doc, "the module docstring must state its 'Oracle cost per step'")
    require("Reference" in module_doc, "the module docstring must have a 'Reference:' line")
    fields = {f.name for f in dataclasses.fields(cls.Params)}
    for key in cls.search_space:
        require(key in fields, f"search_space key {key!r} is not a field of Params")
    return "description, reference, docstring sections, search_space"


def _same(a: Any, b: Any) -> bool:
    """Deep equality where tensors compare by value (dtype and shape included)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(u, v) for u, v in zip(a, b))
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and _same(vars(a), vars(b))
    return a == b


@rule("pure-step", "return a new dict; never write into the input state, `self` or `self.params` "
                   "(no in-place ops, no counters on the instance)")
def check_pure_step(cls: type[Solver]) -> str:
    """step is a function of its input state only (the runner's warm-up and the compiled path
    rely on it): it modifies neither that state nor the solver instance and its parameters, and
    the same state gives the same output."""
    problem = build_quadratic()
    solver = cls()
    oracles = Oracles(problem)
    with torch.no_grad():
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0, "cpu"))
        tensors = dict(state)
        snapshot = {k: v.clone() for k, v in state.items()}
        instance = copy.deepcopy(vars(solver))
        first = solver.step(oracles, state)
        second = solver.step(oracles, state)
    require(state.keys() == snapshot.keys(), f"step changed the keys of its input: {sorted(state)}")
    for key in snapshot:
        require(state[key] is tensors[key], f"step replaced state[{key!r}] in its input dict")
        require(torch.equal(snapshot[key], state[key]), f"step modified state[{key!r}] in place")
    for attribute in instance.keys() | vars(solver).keys():
        require(_same(instance.get(attribute), vars(solver).get(attribute)),
                f"step changed the solver's {attribute!r}: {instance.get(attribute)!r} -> "
                f"{vars(solver).get(attribute)!r}")
    require(first.keys() == second.keys(), "two steps from one state give different keys")
    for key in first:
        require(_same(first[key], second[key]), f"two steps from one state differ in state[{key!r}]")
    return "input, solver and params unchanged; same output twice"


def _counts_match(counted: dict[str, float], declared: dict[str, float], tolerance: float = 1e-6) -> bool:
    # the same kinds, each count within rel `tolerance` (pytest.approx's 1e-6 by default, abs 1e-12)
    return counted.keys() == declared.keys() and all(
        math.isclose(counted[k], declared[k], rel_tol=tolerance, abs_tol=1e-12) for k in counted)


@rule("oracle-cost", "make oracle_cost(facts) return the calls one step makes, by kind (the keys "
                     "of Oracles.calls); a periodic method declares the average over `cost_period`")
def check_oracle_cost(cls: type[Solver]) -> str:
    period = getattr(cls, "cost_period", 1)
    # A random cost is checked in the mean: 500 steps put the standard error near 3 % of the hvp
    # count of a random Neumann length, so 10 % separates a wrong declaration from noise.
    n_steps, tolerance = (500, 0.1) if cls.random_cost else (2 * period, 1e-6)
    solver, oracles, _ = run_steps(cls, build_quadratic(), n_steps)
    declared = {k: v for k, v in solver.cumulative_oracle_cost(oracles.facts, n_steps).items() if v}
    counted = dict(oracles.calls)
    if cls.host_side:  # its cost depends on values: the declared cost is a cap
        over = [f"{kind} {count:g} counted, {declared.get(kind, 0):g} declared at most"
                for kind, count in sorted(counted.items()) if count > declared.get(kind, 0) * (1 + 1e-6)]
        if over:
            raise Violation(f"over {n_steps} host-side steps: {'; '.join(over)}")
        return f"counted <= declared cap over {n_steps} steps ({', '.join(f'{k} {v:g}' for k, v in sorted(counted.items()))})"
    if not _counts_match(counted, declared, tolerance):
        differ = [f"{kind} {counted.get(kind, 0):g} counted, {declared.get(kind, 0):g} declared"
                  for kind in sorted(counted.keys() | declared.keys())
                  if not math.isclose(counted.get(kind, 0), declared.get(kind, 0), rel_tol=tolerance, abs_tol=1e-12)
                  or (kind in counted) != (kind in declared)]
        raise Violation(f"over {n_steps} steps: {'; '.join(differ)}")
    if cls.random_cost:
        return f"counted = expected declared within {tolerance:.0%} over {n_steps} steps ({cls.random_cost})"
    return f"counted = declared over {n_steps} steps"


@rule("determinism", "draw every batch and random number from state['key'] (rng.split, "
                     "oracles.sample_inner/sample_outer), never from torch's global generator")
def check_determinism(cls: type[Solver]) -> str:
    problem = build_quadratic()
    _, _, first = run_steps(cls, problem, 5, seed=3)
    _, _, second = run_steps(cls, problem, 5, seed=3)
    require(first.keys() == second.keys(), "the same seed gives states with different keys")
    for key in first:
        require(torch.equal(first[key], second[key]), f"the same seed gives another state[{key!r}]")
    if not cls.stochastic:
        return "same seed, same iterates"
    _, _, other = run_steps(cls, problem, 5, seed=4)
    require(not torch.equal(first["x"], other["x"]), "a different seed must draw other batches")
    return "same seed, same iterates; another seed, other batches"


@rule("dtype-device", "build new tensors from x or y (torch.zeros_like, x.new_full) so they "
                      "take the run's dtype and device")
def check_dtype_device(cls: type[Solver]) -> str:
    for dtype in (torch.float32, torch.float64):
        problem = build_quadratic(dtype=dtype)
        solver, _, state = run_steps(cls, problem, 3)
        x, y = solver.output(state)
        for label, tensor in (("x", x), ("y", y)):
            require(tensor.dtype == dtype and tensor.device == problem.device,
                    f"{dtype}: output {label} is {tensor.dtype} on {tensor.device}")
        for key, value in state.items():
            if value.is_floating_point():
                require(value.dtype == dtype, f"state[{key!r}] changed dtype to {value.dtype}")
    return "float32 and float64 and the device kept"


@rule("no-nan", "check the default step sizes (the paper's) and any division by a norm that "
                "can be zero")
def check_no_nan(cls: type[Solver]) -> str:
    _, _, state = run_steps(cls, build_quadratic(dtype=torch.float32), 20)
    for key, value in state.items():
        if value.is_floating_point():
            require(bool(torch.isfinite(value).all()), f"state[{key!r}] is not finite after 20 float32 steps")
    return "20 float32 steps, all finite"


@rule("convergence", "make the defaults converge on the well-conditioned quadratic, or set "
                     "`biased = \"why\"` for a method its paper makes biased", slow=True)
def check_convergence(cls: type[Solver]) -> str:
    from .runner import Cell, RunConfig, run_cell  # noqa: PLC0415 - the runner is heavy to import

    require(get_solver(cls.name) is cls, f"the registry's solver named {cls.name!r} is another class")
    table = run_cell(Cell("quadratic", cls.name, WELL_CONDITIONED, {}, seed=0),
                     RunConfig(max_time=120, max_steps=CONVERGENCE_STEPS, n_evals=8, dtype="float64",
                               target=CONVERGENCE_TOLERANCE, stop_at_target=True))
    final = table.iloc[-1]
    require(final["status"] == "ok", f"run ended {final['status']}: {final['message']}")
    worst = table["objective_relative_suboptimality"].max()
    if cls.biased:
        # A documented biased method: it must stay bounded (no blow-up) within the budget.
        require(worst <= BIASED_BOUND, f"biased and unbounded: suboptimality reached {worst:.2e} "
                                       f"> {BIASED_BOUND:g} ({cls.biased})")
        return f"biased; suboptimality stays <= {BIASED_BOUND:g}"
    reached = final["objective_relative_suboptimality"]
    if cls.host_side:
        require(reached <= HOST_SIDE_BOUND,
                f"{cls.name} (host-side search) reached {reached:.2e} in {final['step']} steps "
                f"(bound {HOST_SIDE_BOUND:g}, what uniform random search guarantees)")
        return f"host-side search: suboptimality {reached:.1e} in {final['step']} steps (bound {HOST_SIDE_BOUND:g})"
    require(reached <= CONVERGENCE_TOLERANCE,
            f"{cls.name} reached {reached:.2e} in {final['step']} steps (target {CONVERGENCE_TOLERANCE:g})")
    return f"suboptimality {reached:.1e} in {final['step']} steps"


def small_solver(cls: type[Solver]) -> Solver:
    """`cls` with its default parameters, integer ones capped at SMALL: a loop of 2 iterations
    traces the same operations as one of 20, while tracing time grows with the unrolled graph."""
    defaults = cls.Params()
    small = {f.name: min(getattr(defaults, f.name), SMALL) for f in dataclasses.fields(defaults)
             if type(getattr(defaults, f.name)) is int}  # bool is an int: exact type only
    return cls(**small)


def _require_same_layout(state: State, reference: State, where: str) -> None:
    require(state.keys() == reference.keys(), f"{where}: keys {sorted(state)} != {sorted(reference)}")
    for key, value in state.items():
        ref = reference[key]
        require((value.shape, value.dtype, value.device) == (ref.shape, ref.dtype, ref.device),
                f"{where}: state[{key!r}] is {value.dtype}{list(value.shape)} on {value.device}, "
                f"was {ref.dtype}{list(ref.shape)} on {ref.device}")


def check_compiled_step(solver: Solver, calls: int = COMPILED_CALLS) -> None:
    """Compile `solver.step` with fullgraph=True; 1 + `calls` steps with no recompilation, a
    stable state layout and the eager iterates at every step. Raises on the first difference.

    fullgraph=True makes a graph break (`.item()`, `float(tensor)`, a Python `if` on a tensor)
    an error; aot_eager functionalizes and traces as Inductor does but runs the eager kernels (no
    code generation). The initial state is cloned key by key, as the runner does: dynamo guards
    on aliasing between inputs, so an init storing one tensor under two keys would recompile."""
    import torch._dynamo  # noqa: PLC0415 - only the compile rule needs it

    problem = build_quadratic()
    oracles = Oracles(problem)
    with torch.no_grad():
        initial = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(3, problem.device))
        eager = {k: v.clone() for k, v in initial.items()}
        compiled = {k: v.clone() for k, v in initial.items()}
        step = torch.compile(solver.step, fullgraph=True, backend="aot_eager")
        for i in range(1 + calls):
            if i == 0:
                compiled = step(oracles, compiled)  # compiles
            else:
                with torch._dynamo.config.patch(error_on_recompile=True):
                    compiled = step(oracles, compiled)
            eager = solver.step(oracles, eager)
            _require_same_layout(compiled, initial, f"compiled step {i + 1}")
            _require_same_layout(eager, initial, f"eager step {i + 1}")
            for key in initial:
                torch.testing.assert_close(compiled[key], eager[key], rtol=RTOL, atol=ATOL,
                                           msg=lambda m, key=key, i=i: f"step {i + 1}, state[{key!r}]: {m}")


@rule("compile", "no .item(), float(tensor) or Python `if` on a tensor in step; fixed shapes; "
                 "no state on self; or set `compile_blocker = \"why\"`", slow=True)
def check_compile(cls: type[Solver]) -> str:
    import torch._dynamo  # noqa: PLC0415

    if cls.host_side:
        return f"not compiled: host-side step ({cls.host_side})"
    torch._dynamo.reset()  # a fresh cache: its recompile limit and guards belong to this solver
    try:
        if cls.compile_blocker is None:
            try:
                check_compiled_step(small_solver(cls))
            except torch._dynamo.exc.TorchDynamoException as error:
                raise Violation(f"not one graph ({type(error).__name__}): {_first_line(error)}") from error
            return f"one graph, {COMPILED_CALLS} calls without recompiling, eager iterates"
        try:
            check_compiled_step(small_solver(cls))
        except torch._dynamo.exc.TorchDynamoException:
            return "fails to compile, as compile_blocker declares"
        raise Violation("the step compiles although compile_blocker is set: remove it")
    finally:
        torch._dynamo.reset()


def check_all(cls: type[Solver], names: list[str] | None = None) -> list[Result]:
    """The rules `names` (default: all, in order) on `cls`."""
    return [RULES[name](cls) for name in (names or list(RULES))]
