"""Run configurations as YAML files (`run --config FILE`), e.g. a tuning artefact to replay.

    problems: ["quadratic[n_inner=256,dim_x=10,dim_y=10]"]
    solvers: ["soba[step_inner=0.05]", "aid-cg"]   # or the reference benchmark's specs, e.g.
                                                  # "SOBA[step_size=0.03125,outer_ratio=0.01,random_state=[1, 2]]"
    seeds: [0, 1, 2]
    max_time: 30          # any RunConfig field: max_steps, n_evals, device, dtype, compile, ...

Other top-level keys (e.g. `tuning:` written by `tune`) are kept as metadata and ignored here.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError
from .params import build_params
from .runner import RunConfig

METADATA_KEYS = ("tuning", "label", "version", "description")
DEFAULT_SEEDS = [0]  # the seeds of a benchmark that names none


@dataclass
class BenchmarkSpec:
    """What a benchmark runs: problem specs × solver specs × seeds, under one RunConfig."""

    problems: list[str]
    solvers: list[str]
    seeds: list[int] = field(default_factory=lambda: list(DEFAULT_SEEDS))
    run: RunConfig = field(default_factory=RunConfig)


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and check a YAML run configuration; one clear UserError for anything malformed."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read config file {path}: {error}") from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1})" if where else ""
        raise UserError(f"config file {path} is not valid YAML{line}") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must be a mapping with keys problems, solvers, seeds, ...")
    run_fields = {f.name for f in dataclasses.fields(RunConfig)}
    allowed = {"problems", "solvers", "seeds", *run_fields, *METADATA_KEYS}
    unknown = sorted(set(map(str, data)) - allowed)
    if {"solver", "dataset", "objective"} & set(map(str, data)):
        raise UserError(f"config file {path} is a benchopt configuration (objective, dataset, solver); ours has "
                        "problems: and solvers:, where the reference's solver lines work as written there "
                        "(e.g. configs/reference-ijcnn1-best.yml)")
    if unknown:
        raise UserError(f"config file {path}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
    for key in ("problems", "solvers"):
        if key in data and (not isinstance(data[key], list) or not all(isinstance(s, str) for s in data[key])):
            raise UserError(f"config file {path}: {key!r} must be a list of strings like 'name[key=value]'")
    if "seeds" in data and (not isinstance(data["seeds"], list) or not all(
            isinstance(s, int) and not isinstance(s, bool) for s in data["seeds"])):
        raise UserError(f"config file {path}: 'seeds' must be a list of integers")
    return data


def run_config(values: dict[str, Any]) -> RunConfig:
    """A RunConfig from loose values (CLI strings or YAML scalars), typed and checked."""
    run_fields = {f.name for f in dataclasses.fields(RunConfig)}
    return build_params(RunConfig, {k: v for k, v in values.items() if k in run_fields and v is not None},
                        "run configuration")


def parse_seeds(text: str) -> list[int]:
    """'0,1,2' or '0-4' -> list of seeds."""
    seeds: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, dash, high = part.partition("-")
        try:
            if dash and low:
                seeds.extend(range(int(low), int(high) + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise UserError(f"cannot read seeds {text!r}: expected e.g. 0,1,2 or 0-4") from None
    if not seeds:
        raise UserError(f"no seed in {text!r}")
    if any(s < 0 for s in seeds):
        raise UserError(f"seeds must be non-negative, got {text!r}")
    return seeds
