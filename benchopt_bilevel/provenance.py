"""Where a result came from: versions, code revision, hardware, stored with every run; and
what makes a run unique (`cell_identity`): its id, the name of its result file."""
from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import importlib
import inspect
import platform
import socket
import subprocess
import sys
import json
import types
from pathlib import Path
from typing import Any

import torch

from . import __version__, allocator, native
from .cells import Cell, RunConfig, resolve_device, validate
from .params import params_to_dict

ENGINE_DIR = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=None)
def git_revision() -> str:
    """The git commit of the source tree the engine was imported from ('+dirty' if modified)."""
    try:
        root = ENGINE_DIR.parent
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return rev.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@functools.lru_cache(maxsize=None)
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name()


# Engine modules every run executes, hashed even if no solver or problem imports them by name
# (the runner imports them, but a lazy import inside a function would escape the closure below).
CORE_MODULES = ("benchopt_bilevel.runner", "benchopt_bilevel.oracles", "benchopt_bilevel.problem",
                "benchopt_bilevel.solver", "benchopt_bilevel.linalg", "benchopt_bilevel.inner",
                "benchopt_bilevel.schedules", "benchopt_bilevel.rng", "benchopt_bilevel.clock",
                "benchopt_bilevel.params", "benchopt_bilevel.results", "benchopt_bilevel.cells",
                "benchopt_bilevel.chunks")
PACKAGE = "benchopt_bilevel"


def _module_of(value: object) -> types.ModuleType | None:
    if isinstance(value, types.ModuleType):
        return value
    name = getattr(value, "__module__", None)
    return sys.modules.get(name) if isinstance(name, str) else None


def module_closure(*roots: types.ModuleType) -> list[Path]:
    """Source files of `roots` and of every project module they use, transitively.

    A module uses what its namespace holds: imported modules, and classes or functions defined
    in another module (`from ._implicit import ImplicitSolver` pulls in `_implicit.py`, whose
    own imports pull in `linalg.py`, ...). Only modules of this package are followed.
    """
    seen: dict[str, Path] = {}
    stack = list(roots)
    while stack:
        module = stack.pop()
        name = getattr(module, "__name__", "")
        file = getattr(module, "__file__", None)
        if name in seen or not file or not (name == PACKAGE or name.startswith(PACKAGE + ".")):
            continue
        seen[name] = Path(file).resolve()
        if hasattr(module, "__path__"):  # a package's namespace holds whatever was imported so far
            continue
        for key, value in list(vars(module).items()):
            if key.startswith("__"):  # module metadata, and globals torch.compile injects at run time
                continue              # (`__import_<module>`): not what the module's code uses
            used = _module_of(value)
            if used is not None and used.__name__ not in seen:
                stack.append(used)
    return sorted(set(seen.values()))


@functools.lru_cache(maxsize=None)
def _files_hash(files: tuple[Path, ...]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def code_hash(*objects: object) -> str:
    """Hash of the code a run executes: the files defining `objects` (solver, problem), every
    project module they use (e.g. a solver's shared base class, the linear solvers), and the
    engine's core modules (oracles, runner, clock, ...).

    A change to a solver, to the problem or to any shared part they use changes the run
    identity, so stale results are never mistaken for current ones; a change to an unrelated
    part (the CLI, the plots, another solver) keeps it, so finished runs are reused.
    """
    roots = [importlib.import_module(name) for name in CORE_MODULES]
    extra = []
    for obj in objects:
        module = _module_of(obj) or inspect.getmodule(obj)
        if module is not None:
            roots.append(module)
        else:
            extra.append(repr(obj))
    digest = hashlib.sha256(_files_hash(tuple(module_closure(*roots))).encode())
    for text in extra:
        digest.update(text.encode())
    return digest.hexdigest()[:16]


def provenance(device: torch.device) -> dict[str, object]:
    return {
        "package_version": __version__,
        "git_revision": git_revision(),
        "torch_version": torch.__version__,
        "python_version": sys.version.split()[0],
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        "allocator": allocator.active(),  # timings and resident memory depend on it
        "native_kernels": native.loaded(),  # so do full-batch logistic steps (row_kernels.py)
        "hostname": socket.gethostname(),
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def cell_identity(cell: Cell, config: RunConfig) -> tuple[dict[str, Any], str]:
    """What makes a run unique, and its id: the name of its result file.

    Identity = problem, dataset, solver, both parameter sets, seed, device, dtype, compiled, and
    the hash of the code of the solver, the problem and every shared engine part.
    """
    problem_cls, problem_params, solver_cls, solver_params = validate(cell)
    device = resolve_device(config.device)
    identity = {
        "problem": cell.problem,
        "dataset": getattr(problem_params, "dataset", cell.problem),
        "solver": cell.solver,
        "solver_params": json.dumps(params_to_dict(solver_params), sort_keys=True),
        "problem_params": json.dumps(params_to_dict(problem_params), sort_keys=True),
        "seed": int(cell.seed),
        "device": device.type,
        "dtype": config.dtype,
        "compiled": bool(config.compile),
        "code_hash": code_hash(solver_cls, problem_cls),
        "config": json.dumps({k: v for k, v in dataclasses.asdict(config).items()
                              if k not in ("device", "dtype", "compile")
                              and not (k == "compile_steps" and v == 1)
                              and not (k == "step_path" and v == "eager")}, sort_keys=True),  # ids of older runs stay
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
    return identity, f"{cell.problem}-{cell.solver}-{digest}"
