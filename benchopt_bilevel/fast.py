"""The fast path: n steps of a solver as one compiled loop, built once and reused.

On small problems a step is microseconds of arithmetic spread over tens of tensor operations, so
what eager PyTorch measures is dispatch. The fast path exports `n` steps as one graph,

    forward(n, hyperparameters, *state) = while_loop(i < n, step)(state)

and has AOTInductor build it into a library called with a flat list of tensors (no Python between
steps, a few µs per call). Two choices make one build serve a whole benchmark:

- the loop is torch's `while_loop` over a step count given as a tensor: the graph holds one step
  whatever n is (the JAX reference does the same with `lax.scan`), so builds cost one step's
  compilation and the runner can ask for any chunk length;
- the solver's float and int hyperparameters (step sizes, ratios, schedule constants, inner-loop
  counts: `tensor_fields`) enter as one float64 tensor, not as constants: every seed and every
  tuning trial of a solver on a problem reuses the same library. A count reaches the step as a
  0-dim int64 tensor, which `linalg.repeat` loops over. A string parameter the solver lists in
  `input_choices` (AmIGO's linear solver, F2SA's inner optimizer) enters as the index of its
  value among the search space's options, and the step branches on it with `linalg.switch`
  (torch's `cond`: the graph holds every option). Other string and bool parameters, and the
  fields a solver lists in `static_params` (a count that sets a buffer's shape), shape the graph
  and stay constants.

The problem's data are constants of the library (the build is keyed by the problem's
parameters). Builds are cached on disk (`build_cache.py`).
"""
from __future__ import annotations

import copy
import dataclasses
import warnings
from typing import Any, Callable

import torch

from .fast_options import INDUCTOR_OPTIONS, build_patches
from .linalg import MISSING_ROW_GRAPH, Selected, row_graphs, unaliased
from .oracles import Oracles
from .solver import Solver, State

HYPERPARAMETER_DTYPE = torch.float64  # Python floats are doubles: the eager arithmetic's precision


def _declared_type(field: dataclasses.Field) -> str:
    """A Params field's annotation as a name ("float", "int", "float | None", ...)."""
    if isinstance(field.type, str):  # `from __future__ import annotations`
        return field.type
    return getattr(field.type, "__name__", None) or str(field.type).replace("typing.", "")


OPTIONAL_FLOAT = ("float | None", "Optional[float]")  # None means "derived" (FSLA's momentum)


def _optional_set(solver: Solver, field: dataclasses.Field) -> bool:
    """A field declared `float | None` that holds a value (an input, like a float field)."""
    return _declared_type(field) in OPTIONAL_FLOAT and getattr(solver.params, field.name) is not None


def choice_options(solver: Solver, name: str) -> tuple[str, ...]:
    """The options of an input choice: the values of its `Choice` in the solver's search space."""
    dimension = solver.search_space.get(name)
    values = getattr(dimension, "values", None)
    if not values or not all(isinstance(v, str) for v in values):
        raise TypeError(f"{solver.name}: input choice {name!r} needs a Choice of strings in search_space")
    return tuple(values)


def tensor_fields(solver: Solver) -> tuple[str, ...]:
    """The solver's hyperparameters that enter a fast build as tensors: its fields declared float
    or int (a bool is a choice), those declared `float | None` that hold a float, and the string
    fields it lists in `input_choices`, less the ones it declares static (`Solver.static_params`).

    By the declared type, not the value's: the layout of the hyperparameter vector then depends
    on the solver alone (and on which optional fields are None, part of `static_identity`), so a
    library cached for `step_inner=1` (an int value) cannot be reused with that entry read as a
    count for `step_inner=0.5`."""
    return tuple(f.name for f in dataclasses.fields(solver.params)
                 if (_declared_type(f) in ("float", "int") or _optional_set(solver, f)
                     or f.name in solver.input_choices)
                 and f.name not in solver.static_params)


def integer_fields(solver: Solver) -> tuple[str, ...]:
    """The `tensor_fields` declared int (counts): int64 tensors in the graph."""
    declared = {f.name: _declared_type(f) for f in dataclasses.fields(solver.params)}
    return tuple(name for name in tensor_fields(solver) if declared[name] == "int")


def static_identity(solver: Solver) -> dict[str, Any]:
    """What of the solver's parameters shapes its graph: every field neither in `tensor_fields`
    nor read by `init` alone (`Solver.init_params`)."""
    dynamic = set(tensor_fields(solver)) | set(solver.init_params)
    identity = {f.name: getattr(solver.params, f.name) for f in dataclasses.fields(solver.params)
                if f.name not in dynamic}
    # An optional field's None-ness shapes the graph (a derived value, or an input): kept.
    identity.update({f.name: "input" for f in dataclasses.fields(solver.params)
                     if f.name in dynamic and _optional_set(solver, f)})
    return identity


def hyperparameter_tensor(solver: Solver) -> torch.Tensor:
    """The values of `tensor_fields`, in that order, as one float64 vector on the CPU (an input
    choice as the index of its value among `choice_options`).

    Counts share the floats' vector rather than a second int64 input: the library's signature
    stays (n, hyperparameters, *state) for every solver, and float64 holds every int below 2**53
    exactly (a count is far below), so the graph's int64 conversion gives the count back."""
    for name in integer_fields(solver):
        value = getattr(solver.params, name)
        if not isinstance(value, int) or isinstance(value, bool) or abs(value) >= 2 ** 53:
            raise ValueError(f"{name} = {value!r}: an int field needs an int below 2**53 "
                             "(exact in float64)")
    values = []
    for name in tensor_fields(solver):
        value = getattr(solver.params, name)
        if name in solver.input_choices:
            options = choice_options(solver, name)
            if value not in options:
                raise ValueError(f"{name} = {value!r}: not one of {options}")
            value = options.index(value)
        values.append(value)
    return torch.tensor(values, dtype=HYPERPARAMETER_DTYPE)


def with_tensor_hyperparameters(solver: Solver, values: torch.Tensor) -> Solver:
    """A new instance of the solver whose `tensor_fields` hold the 0-dim tensors values[i]
    (float64, or int64 for the int fields; an input choice holds a `linalg.Selected`).

    Params validation (`__post_init__`) ran on the floats and is not run again: comparisons of
    traced tensors cannot be branched on. The solver's `__init__` runs on the tensors, so
    anything it derives from them (schedules) is part of the graph."""
    params = copy.copy(solver.params)
    integers = set(integer_fields(solver))
    for i, name in enumerate(tensor_fields(solver)):
        # A copy each: while_loop rejects closed-over inputs that alias (views of one vector).
        value = values[i].to(torch.int64) if name in integers else values[i].clone()
        if name in solver.input_choices:
            value = Selected(values[i].to(torch.int64), choice_options(solver, name))
        object.__setattr__(params, name, value)  # frozen dataclasses too
    return type(solver)(params)


class _Steps(torch.nn.Module):
    """`n` steps of `solver` over the values of a state in the order of `keys`."""

    def __init__(self, solver: Solver, oracles: Oracles, keys: list[str]) -> None:
        super().__init__()
        self.solver, self.oracles, self.keys = solver, oracles, keys

    def forward(self, n: torch.Tensor, hyperparameters: torch.Tensor,
                *values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from torch._higher_order_ops.while_loop import while_loop  # noqa: PLC0415 - prototype API

        keys = self.keys

        def body(i: torch.Tensor, *carry: torch.Tensor) -> tuple[torch.Tensor, ...]:
            # Unpacked inside the loop: the loop then closes over one vector, not one tensor per
            # hyperparameter, and the compiled loop re-wraps each closed-over tensor (a tensor
            # handle) for its condition and its body at every iteration.
            solver = with_tensor_hyperparameters(self.solver, hyperparameters)
            state = solver.step(self.oracles, dict(zip(keys, carry)))
            if sorted(state) != sorted(keys):
                raise TypeError("a step must return a state with the keys of its input state")
            # while_loop's body may return neither an input as is (an unchanged entry) nor one
            # tensor as two entries (a solver storing its direction twice): those are copied.
            return (i + 1, *unaliased(tuple(state[k] for k in keys), carry))

        _, *out = while_loop(lambda i, *_: i < n, body, (torch.zeros_like(n), *values))
        return tuple(out)


def export_steps(solver: Solver, oracles: Oracles, example: State) -> torch.export.ExportedProgram:
    """The exported program of `_Steps` for states shaped like `example`."""
    keys = list(example)
    if not all(isinstance(example[k], torch.Tensor) for k in keys):
        raise TypeError("the fast path needs a state of tensors (solver.State)")
    # Distinct copies: export would merge two entries holding one tensor into one input for good.
    inputs = (torch.tensor(1), hyperparameter_tensor(solver), *(example[k].clone() for k in keys))

    def export() -> torch.export.ExportedProgram:
        return torch.export.export(_Steps(solver, oracles, keys), inputs, strict=False)

    with torch.no_grad(), warnings.catch_warnings(), row_graphs() as graphs:
        warnings.simplefilter("ignore", FutureWarning)
        try:
            return export()
        except Exception as error:
            if MISSING_ROW_GRAPH not in str(error):
                raise
        # The step batches rows (linalg.map_rows): one eager step on a copy records their graphs.
        calls = oracles.calls.copy()  # the recording step is not part of the run
        graphs.record(lambda: solver.step(oracles, {k: example[k].clone() for k in keys}))
        oracles.calls.clear()
        oracles.calls.update(calls)
        return export()


Runner = Callable[[list[torch.Tensor]], list[torch.Tensor]]


def build_library(program: torch.export.ExportedProgram, package_path: str) -> str:
    """Compile `program` with AOTInductor into the package file `package_path`."""
    with torch.no_grad(), warnings.catch_warnings(), build_patches():
        warnings.simplefilter("ignore", FutureWarning)
        return torch._inductor.aoti_compile_and_package(program, package_path=package_path,
                                                        inductor_configs=dict(INDUCTOR_OPTIONS))


def load_library(package_path: str) -> Runner:
    """The runner of a built package: a list of tensors in, a list out."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch._inductor.aoti_load_package(package_path).loader.run


def steps_function(runner: Runner, solver: Solver, keys: list[str]) -> Callable[[State, int], State]:
    """`chunk(state, n) -> state` over a built runner, with the solver's hyperparameters."""
    hyperparameters = hyperparameter_tensor(solver)

    def chunk(state: State, n: int) -> State:
        if n <= 0:
            return state
        out = runner([torch.tensor(n), hyperparameters, *(state[k] for k in keys)])
        return dict(zip(keys, out))

    return chunk


def exported_steps(solver: Solver, oracles: Oracles, example: State) -> Callable[[State, int], State]:
    """`chunk(state, n)` running the exported graph without compiling it (the same graph the
    library is built from, run by PyTorch's interpreter): seconds to obtain, used to check that a
    solver exports and gives the eager iterates before paying for a build."""
    keys = list(example)
    module = export_steps(solver, oracles, example).module()
    hyperparameters = hyperparameter_tensor(solver)

    def chunk(state: State, n: int) -> State:
        with torch.no_grad():
            out = module(torch.tensor(n), hyperparameters, *(state[k] for k in keys))
        return dict(zip(keys, out))

    return chunk
