"""Parse `name[key=value,...]` specifications into a name and typed dataclass parameters."""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any

from .errors import UserError

_SPEC = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:\[(.*)\])?\s*$", re.S)


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """'soba[step_inner=0.1,batch=64]' -> ('soba', {'step_inner': '0.1', 'batch': '64'})."""
    match = _SPEC.match(spec)
    if not match:
        raise UserError(f"cannot parse {spec!r}: expected NAME or NAME[key=value,...]")
    name, body = match.group(1), match.group(2)
    values: dict[str, str] = {}
    if body is not None and body.strip():
        for item in body.split(","):
            key, sep, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not key or not value:
                raise UserError(f"cannot parse {item.strip()!r} in {spec!r}: expected key=value")
            if key in values:
                raise UserError(f"parameter {key!r} given twice in {spec!r}")
            values[key] = value
    return name, values


def _convert(value: Any, kind: Any, where: str) -> Any:
    if kind in (Any, typing.Any):
        return value
    origin = typing.get_origin(kind)
    if origin is typing.Union or origin is types.UnionType:
        options = [k for k in typing.get_args(kind) if k is not type(None)]
        if isinstance(value, str) and value.lower() in ("none", "null") and len(options) < len(typing.get_args(kind)):
            return None
        for option in options:
            try:
                return _convert(value, option, where)
            except UserError:
                continue
        raise UserError(f"{where}: cannot read {value!r} as {kind}")
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise UserError(f"{where}: expected true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise UserError(f"{where}: expected an integer, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise UserError(f"{where}: expected an integer, got {value!r}") from None
        if not number.is_integer():
            raise UserError(f"{where}: expected an integer, got {value!r}")
        return int(number)
    if kind is float:
        if isinstance(value, bool):
            raise UserError(f"{where}: expected a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise UserError(f"{where}: expected a number, got {value!r}") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise UserError(f"{where}: expected a finite number, got {value!r}")
        return number
    if kind is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise UserError(f"{where}: expected a string, got {value!r}")
        return str(value)
    raise UserError(f"{where}: unsupported parameter type {kind}")


def build_params(params_cls: type, values: dict[str, Any], owner: str) -> Any:
    """An instance of the dataclass `params_cls` with `values` converted to the field types."""
    fields = {f.name: f for f in dataclasses.fields(params_cls)}
    hints = typing.get_type_hints(params_cls)
    unknown = [k for k in values if k not in fields]
    if unknown:
        raise UserError(
            f"{owner} has no parameter {unknown[0]!r}; its parameters are: {', '.join(fields) or '(none)'}"
        )
    converted = {k: _convert(v, hints[k], f"{owner} parameter {k!r}") for k, v in values.items()}
    try:
        params = params_cls(**converted)
    except (TypeError, ValueError) as error:
        raise UserError(f"{owner}: {error}") from None
    return params


# -- where a default comes from ---------------------------------------------------------------
SOURCES = ("paper", "reference", "ours")


@dataclasses.dataclass(frozen=True)
class Provenance:
    """Where a parameter's default comes from: `paper` (with where in it), `reference` (the JAX
    benchopt benchmark_bilevel default) or `ours` (with the reason)."""

    source: str
    note: str

    def __str__(self) -> str:
        return f"{self.source}: {self.note}" if self.note else self.source


def _sourced(value: Any, source: str, note: str) -> Any:
    return dataclasses.field(default=value, metadata={"provenance": Provenance(source, note)})


def paper(value: Any, where: str) -> Any:
    """A dataclass field whose default the method's paper gives (`where`: section, table, theorem)."""
    return _sourced(value, "paper", where)


def reference(value: Any, where: str = "") -> Any:
    """A dataclass field whose default is the JAX reference benchmark's (`where`: file or config)."""
    return _sourced(value, "reference", where)


def ours(value: Any, why: str) -> Any:
    """A dataclass field whose default is this suite's choice, `why` in a few words."""
    return _sourced(value, "ours", why)


def provenance(params_cls: type) -> dict[str, Provenance | None]:
    """Each parameter of the dataclass `params_cls` and where its default comes from (None when
    undeclared: the conformance tests fail on it)."""
    if not dataclasses.is_dataclass(params_cls):
        return {}
    return {f.name: f.metadata.get("provenance") for f in dataclasses.fields(params_cls)}


def params_to_dict(params: Any) -> dict[str, Any]:
    return dataclasses.asdict(params) if dataclasses.is_dataclass(params) else {}
