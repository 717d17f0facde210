"""Solver specifications of the JAX reference benchmark (benchopt/benchmark_bilevel), replayed here.

Its configuration files name solvers as benchopt does, e.g.

    SOBA[batch_size=64,eval_freq=131072,framework=numba,outer_ratio=0.01,step_size=0.03125,random_state=[1, 2, 3],framework=numba]

with lists in brackets, keys that may repeat (with the same value) and names in any case. Each
solver declares its name there (`Solver.reference_name`) and its parameter names mapped to ours
(`Solver.reference_params`); the rest is handled here, the same for every solver:

- `random_state` (one seed or a list) becomes the seeds of that solver's runs;
- `batch_size` is a problem parameter here (the block size of logreg, quadratic, ...): it is set on
  the problem of that solver's runs, or checked against the problem's own when the problem spec
  gives one;
- `eval_freq` and `framework` are how the reference runs (steps between evaluations, numba or
  JAX): ignored, with a note (evaluation points here come from `n_evals`).

Any other list value expands into one spec per value (benchopt's grid: the cross product). Our
own specs (`soba[step_inner=0.1]`) are unchanged, their names read in any case too.
"""
from __future__ import annotations

import dataclasses
import difflib
import itertools
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import UserError
from .params import parse_spec
from .solver import Solver

# Reference parameters every solver shares, handled here rather than in `reference_params`.
SEED_KEY = "random_state"
PROBLEM_KEYS = ("batch_size",)
IGNORED_KEYS = {
    "eval_freq": "steps between the reference's evaluations; here n_evals sets the evaluation points",
    "framework": "the reference's backend, numba or JAX",
}
CENTRAL_KEYS = (SEED_KEY, *PROBLEM_KEYS, *IGNORED_KEYS)

Value = str | list[str]


@dataclass(frozen=True)
class Translation:
    """One solver spec as this suite runs it: the solver's registered name and parameters (ours),
    the seeds the spec asks (None: the run's), the problem parameters it asks, and notes."""

    solver: str
    params: dict[str, str] = field(default_factory=dict)
    seeds: tuple[int, ...] | None = None
    problem_params: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    source: str = ""

    @property
    def label(self) -> str:
        """The solver's name as the spec writes it, for messages."""
        return (self.source or self.solver).partition("[")[0].strip()

    @property
    def spec(self) -> str:
        """Our spec, e.g. 'soba[step_inner=0.03125,outer_ratio=0.01]'."""
        return format_spec(self.solver, self.params)


def format_spec(name: str, params: Mapping[str, Any]) -> str:
    """('soba', {'step_inner': '0.1'}) -> 'soba[step_inner=0.1]'; the name alone without parameters."""
    return f"{name}[{','.join(f'{k}={v}' for k, v in params.items())}]" if params else name


# -- parsing ------------------------------------------------------------------------------------------
def _split_top_level(body: str, spec: str) -> list[str]:
    """Split on the commas outside brackets: 'a=1,b=[1, 2]' -> ['a=1', 'b=[1, 2]']."""
    items, depth, start = [], 0, 0
    for index, char in enumerate(body):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise UserError(f"cannot parse {spec!r}: unbalanced ']'")
        elif char == "," and depth == 0:
            items.append(body[start:index])
            start = index + 1
    if depth:
        raise UserError(f"cannot parse {spec!r}: unbalanced '['")
    items.append(body[start:])
    return [item.strip() for item in items if item.strip()]


def _unquote(text: str) -> str:
    text = text.strip()
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" else text


def _value(text: str) -> Value:
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        return [_unquote(part) for part in text[1:-1].split(",") if part.strip()]
    return _unquote(text)


def parse_reference_spec(spec: str) -> tuple[str, dict[str, Value]]:
    """'SOBA[step_size=0.1,random_state=[1, 2],framework=numba,framework=numba]' ->
    ('SOBA', {'step_size': '0.1', 'random_state': ['1', '2'], 'framework': 'numba'}).

    Keys are read in lower case; a key given twice must have the same value both times."""
    text = spec.strip()
    name, bracket, rest = text.partition("[")
    name = name.strip()
    if not name or (bracket and not rest.endswith("]")) or any(c.isspace() or c in "]=," for c in name):
        raise UserError(f"cannot parse {spec!r}: expected NAME or NAME[key=value,...]")
    values: dict[str, Value] = {}
    for item in _split_top_level(rest[:-1], spec) if bracket else []:
        key, sep, raw = item.partition("=")
        key = key.strip().lower()
        if not sep or not key or not raw.strip():
            raise UserError(f"cannot parse {item!r} in {spec!r}: expected key=value")
        value = _value(raw)
        if key in values and values[key] != value:
            raise UserError(f"parameter {key!r} given twice with different values in {spec!r}")
        values[key] = value
    return name, values


# -- translation --------------------------------------------------------------------------------------
def _by_lower_name(solvers: Mapping[str, type[Solver]]) -> dict[str, str]:
    return {name.lower(): name for name in solvers}


def declared_reference(cls: type[Solver]) -> tuple[str | None, dict[str, str]]:
    """The reference name and parameter names a solver class declares itself: a subclass (SUSTAIN
    extends MRBO) does not inherit its parent's."""
    return cls.__dict__.get("reference_name"), dict(cls.__dict__.get("reference_params", {}))


def reference_names(solvers: Mapping[str, type[Solver]]) -> dict[str, str]:
    """Each reference name (lower case) -> the registered solver that replays it; UserError when two
    solvers claim the same reference name."""
    table: dict[str, str] = {}
    for name, cls in solvers.items():
        reference_name, _ = declared_reference(cls)
        if reference_name:
            key = reference_name.lower()
            if key in table:
                raise UserError(f"solvers {table[key]!r} and {name!r} both declare the reference name "
                                f"{reference_name!r}; one solver per reference name")
            table[key] = name
    return table


def _fields(cls: type[Solver]) -> list[str]:
    params = cls.Params
    return [f.name for f in dataclasses.fields(params)] if dataclasses.is_dataclass(params) else []


def _seeds(value: Value, source: str) -> tuple[int, ...]:
    texts = value if isinstance(value, list) else [value]
    try:
        seeds = tuple(int(text) for text in texts)
    except ValueError:
        raise UserError(f"{source}: random_state must be an integer or a list of integers, got {value!r}") from None
    if not seeds or any(seed < 0 for seed in seeds):
        raise UserError(f"{source}: random_state must be non-negative integers, got {value!r}")
    return tuple(dict.fromkeys(seeds))


def _grid(values: dict[str, Value]) -> list[dict[str, str]]:
    """benchopt's grid: one dict per combination of the list values."""
    keys = list(values)
    options = [values[k] if isinstance(values[k], list) else [values[k]] for k in keys]
    return [dict(zip(keys, combination)) for combination in itertools.product(*options)]


def _translate_reference(spec: str, values: dict[str, Value], cls: type[Solver]) -> list[Translation]:
    ours = _fields(cls)
    label, declared = declared_reference(cls)
    mapping = {k.lower(): v for k, v in declared.items()}
    accepted = [*mapping, *CENTRAL_KEYS]
    seeds, problem, notes, params = None, {}, [], {}
    for key, value in values.items():
        if key == SEED_KEY:
            seeds = _seeds(value, label)
        elif key in PROBLEM_KEYS:
            if isinstance(value, list):
                raise UserError(f"{label}: {key} is a problem parameter here and takes one value, got {value!r}")
            problem[key] = value
        elif key in IGNORED_KEYS:
            notes.append(f"{label}: {key}={value} ignored ({IGNORED_KEYS[key]})")
        elif key in mapping or key in ours:
            target = mapping.get(key, key)
            if target in params and params[target] != value:
                raise UserError(f"{label}: {target!r} given twice with different values ({params[target]!r}, {value!r})")
            params[target] = value
        else:
            raise UserError(f"{label} (solver {cls.name!r}) has no parameter {key!r}; the reference's names accepted: "
                            f"{', '.join(accepted)}; ours: {', '.join(ours) or '(none)'}")
    return [Translation(cls.name, combination, seeds, dict(problem), tuple(notes), spec)
            for combination in _grid(params)]


def translate(spec: str, solvers: Mapping[str, type[Solver]] | None = None) -> list[Translation]:
    """The runs a solver spec asks, ours or the reference benchmark's (see the module docstring).

    Our spec (a registered name in any case, with our parameter names) translates to itself under the
    registered name. A reference name (any case), or one of ours given a reference parameter, goes
    through the solver's `reference_params`. `solvers` defaults to the registry."""
    if solvers is None:
        from .registry import solvers as registered  # noqa: PLC0415 - the registry imports every solver

        solvers = registered()
    ours = _by_lower_name(solvers)
    references = reference_names(solvers)
    try:
        name, simple = parse_spec(spec)
    except UserError:
        name, simple = None, None
    if name is not None and name.lower() in ours:
        cls = solvers[ours[name.lower()]]
        if set(simple) <= set(_fields(cls)) or not declared_reference(cls)[0]:
            return [Translation(cls.name, dict(simple), source=spec)]
    name, values = parse_reference_spec(spec)
    key = name.lower()
    if key in references:
        target = references[key]
    elif key in ours and declared_reference(solvers[ours[key]])[0]:
        target = ours[key]  # one of ours given the reference's parameters
    else:
        target = None
    if target is None and key in ours:
        try:
            parse_spec(spec)  # one of ours given a list: our parser says what is wrong
        except UserError as error:
            raise UserError(f"{error} ({ours[key]} declares no reference benchmark name, whose specs take lists)") from None
    if target is None:
        known = {**{k: declared_reference(solvers[v])[0] for k, v in references.items()}, **ours}
        close = [known[k] for k in difflib.get_close_matches(key, list(known), n=3)]
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UserError(f"unknown solver {name!r}.{hint} Run `benchopt-bilevel list solvers` to see them all.")
    return _translate_reference(spec, values, solvers[target])


def same_value(a: str, b: str) -> bool:
    """'64' and '64.0' are the same value; 'zero' and 'zero' too."""
    try:
        return float(a) == float(b)
    except ValueError:
        return a.strip() == b.strip()


def for_tuning(spec: str, problem: str, solvers: Mapping[str, type[Solver]] | None = None) -> tuple[list[str], list[str]]:
    """Our specs for `tune` on one problem, and notes. Tune has one problem and its own seeds, so a
    spec's batch_size must be the problem's (given or default) and its random_state is ignored."""
    from .params import build_params  # noqa: PLC0415
    from .registry import get_problem  # noqa: PLC0415 - the registry imports every problem

    name, values = parse_spec(problem)
    problem_params = build_params(get_problem(name).Params, values, f"problem {name!r}")
    specs, notes = [], []
    for translation in translate(spec, solvers):
        for key, value in translation.problem_params.items():
            if not hasattr(problem_params, key):
                raise UserError(f"{translation.label}: {key} is a problem parameter here and {name} has none; "
                                f"drop {key}={value} from the solver spec")
            have = getattr(problem_params, key)
            if not same_value(str(have), value):
                raise UserError(f"{translation.label}: {key}={value} but the problem has {key}={have}; {key} is a "
                                f"problem parameter here: put it on the problem ('{name}[{key}={value}]')")
        if translation.seeds is not None:
            notes.append(f"{translation.label}: random_state ignored (tune's seeds are --tuning-seeds and --fresh-seeds)")
        notes += translation.notes
        specs.append(translation.spec)
    return specs, list(dict.fromkeys(notes))
