"""The on-disk cache of fast builds (`fast.py`): a library built once per (solver structure,
problem, state shapes, dtype, code), reused by every seed, every tuning trial and every later run.

Where: `$BENCHOPT_BILEVEL_CACHE`, else `~/.cache/benchopt-bilevel/builds`
(`benchopt-bilevel cache` prints it, `benchopt-bilevel cache --clear` empties it).

Key: sha256 of a JSON identity (`build_identity`): the solver's name and the parameters that
shape its graph (`fast.static_identity`; its float hyperparameters are an input of the library,
not part of the key), the problem's class and parameters (its data are constants of the
library), the state's keys, shapes and dtypes in order, the dtype, the device, the host's CPU
(model and a hash of its feature flags: Inductor builds for the instruction set of the machine
that builds, so a cache shared by cluster nodes keeps one library per kind of node), the torch
version and a code hash. The code hash covers the sources of every `benchopt_bilevel/*.py`, the solver's
module file and the problem's module file: any change to that code invalidates every entry
(coarse on purpose: a stale library would silently run old arithmetic).

Inductor's own working cache (generated C++, compiled kernels, the interface object of
`aoti_interface.py` and a precompiled header of ~150 MB per compile command, so one per
environment path) lives where torch puts it, `$TORCHINDUCTOR_CACHE_DIR`, else
`/tmp/torchinductor_<user>`. It is not moved here: torch.compile users share it, and a fresh
directory per run would pay the header and every kernel again. `benchopt-bilevel cache` reports
its size, and `--clear-inductor` empties it.

Entry: `<key>.pt2` (the AOTInductor package) and `<key>.json` (identity, state keys in the
library's order, build seconds, creation time). `<key>.auto.json` is the runner's "auto" choice
for that identity (`remembered_choice`): the first run measures and decides, every later run of
the identity (other seeds, other tuning trials) takes the same path, so one selection's runs are
never split between eager and fast by a measurement near the threshold. Parallel workers are safe: a build holds an
exclusive `fcntl.flock` on `<key>.lock`, so a second worker asking for the same key waits and
then finds the entry; files are written to a temp name in the cache directory and `os.replace`d
(atomic), so a reader never sees half a library. An entry that is corrupt or fails to load is
rebuilt, never an error.
"""
from __future__ import annotations

import datetime
import fcntl
import functools
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from .atomic import atomic_write

CACHE_ENV = "BENCHOPT_BILEVEL_CACHE"
DEFAULT_CACHE = Path("~/.cache/benchopt-bilevel/builds")
ENGINE_DIR = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """The cache directory: $BENCHOPT_BILEVEL_CACHE, else ~/.cache/benchopt-bilevel/builds."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


@functools.lru_cache(maxsize=None)
def _hash_files(files: tuple[Path, ...]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.name).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def code_hash(*classes: type) -> str:
    """Hash of every `benchopt_bilevel/*.py` and of the files defining `classes` (solver, problem)."""
    files = set(ENGINE_DIR.glob("*.py"))
    for cls in classes:
        module = sys.modules.get(cls.__module__)
        if module is not None and getattr(module, "__file__", None):
            files.add(Path(module.__file__).resolve())
    return _hash_files(tuple(sorted(files)))


@functools.lru_cache(maxsize=None)
def host_cpu() -> str:
    """The CPU a library is built for: its model and a hash of its feature flags (Linux's
    /proc/cpuinfo; elsewhere the platform's processor name alone)."""
    from .provenance import cpu_name  # noqa: PLC0415 - provenance imports the run machinery

    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() in ("flags", "Features"):
                flags = " ".join(sorted(line.split(":", 1)[1].split()))
                break
    except OSError:
        pass
    return f"{cpu_name()} [{hashlib.sha256(flags.encode()).hexdigest()[:12]}]" if flags else cpu_name()


def build_identity(solver: Any, problem: Any, state: dict[str, torch.Tensor], dtype: torch.dtype,
                   device: torch.device) -> dict[str, Any]:
    """What a fast build depends on (JSON-able); its sha256 is the cache key."""
    from . import fast  # noqa: PLC0415 - fast imports the solver machinery

    return {
        "solver": getattr(solver, "name", None) or type(solver).__name__,
        "solver_class": f"{type(solver).__module__}.{type(solver).__qualname__}",
        "static": fast.static_identity(solver),
        "problem": f"{type(problem).__module__}.{type(problem).__qualname__}",
        "problem_params": problem.describe(),
        "state": [[k, list(v.shape), str(v.dtype)] for k, v in state.items()],
        "dtype": str(dtype),
        "device": str(device),
        "host": host_cpu() if torch.device(device).type == "cpu" else None,
        "torch": torch.__version__,
        "code": code_hash(type(solver), type(problem)),
    }


def cache_key(identity: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical(identity).encode()).hexdigest()


def _canonical(identity: dict[str, Any]) -> str:
    # repr for what JSON cannot hold (tuples are lists, enums and paths their repr): stable per value.
    return json.dumps(identity, sort_keys=True, default=repr)


@dataclass
class Loaded:
    """A library ready to run, and whether it came from the cache."""

    runner: Callable[[list[torch.Tensor]], list[torch.Tensor]]
    keys: list[str]
    hit: bool
    build_seconds: float


def _read_entry(directory: Path, key: str, identity: dict[str, Any],
                load: Callable[[str], Any]) -> Loaded | None:
    """The entry `key` loaded, or None if absent, corrupt, for another identity, or unloadable."""
    package, meta = directory / f"{key}.pt2", directory / f"{key}.json"
    if not (package.is_file() and meta.is_file()):
        return None
    try:
        info = json.loads(meta.read_text())
        if info.get("identity") != json.loads(_canonical(identity)):
            return None
        return Loaded(load(str(package)), list(info["keys"]), True, float(info.get("build_seconds", float("nan"))))
    except Exception:  # noqa: BLE001 - a corrupt entry is rebuilt, whatever is wrong with it
        return None


def get_or_build(identity: dict[str, Any], keys: list[str], build: Callable[[str], Any],
                 load: Callable[[str], Any], directory: Path | None = None) -> Loaded:
    """The library of `identity`: loaded from the cache, else built by `build(path)` (which writes
    a package at `path`, a name ending in .pt2) and stored. `load(path)` turns a package into a
    runner. Build errors propagate (the caller falls back to eager)."""
    directory = directory or cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    key = cache_key(identity)
    found = _read_entry(directory, key, identity, load)  # no lock on a hit: entries are replaced atomically
    if found is not None:
        return found
    with open(directory / f"{key}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second worker waits here, then finds the entry
        try:
            found = _read_entry(directory, key, identity, load)
            if found is not None:
                return found
            temporary = directory / f".{key}.{os.getpid()}.tmp.pt2"
            try:
                start = time.perf_counter()
                build(str(temporary))
                seconds = time.perf_counter() - start
                os.replace(temporary, directory / f"{key}.pt2")
            finally:
                temporary.unlink(missing_ok=True)
            info = {"identity": json.loads(_canonical(identity)), "keys": keys, "build_seconds": seconds,
                    "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
            atomic_write(directory / f"{key}.json", json.dumps(info, indent=1, sort_keys=True).encode())
            return Loaded(load(str(directory / f"{key}.pt2")), keys, False, seconds)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def remembered_choice(identity: dict[str, Any], decide: Callable[[], dict[str, Any]],
                      directory: Path | None = None) -> tuple[dict[str, Any], bool]:
    """The choice recorded for `identity` (a JSON-able dict, e.g. {"path": "fast", ...}) and
    True; or, the first time, `decide()`'s, recorded, and False. Under the identity's lock, so two
    workers asking at once get one choice; a record that is corrupt or for another identity is
    decided again."""
    directory = directory or cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    key = cache_key(identity)
    record = directory / f"{key}.auto.json"
    with open(directory / f"{key}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            try:
                stored = json.loads(record.read_text())
                if stored.get("identity") == json.loads(_canonical(identity)) and isinstance(stored.get("choice"), dict):
                    return stored["choice"], True
            except (OSError, ValueError):
                pass
            choice = decide()
            info = {"identity": json.loads(_canonical(identity)), "choice": choice,
                    "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
            atomic_write(record, json.dumps(info, indent=1, sort_keys=True).encode())
            return choice, False
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def cache_stats(directory: Path | None = None) -> dict[str, Any]:
    """Path, total size in bytes and entry count (packages) of the cache."""
    directory = directory or cache_dir()
    files = [p for p in directory.rglob("*") if p.is_file()] if directory.is_dir() else []
    return {"path": str(directory), "bytes": sum(p.stat().st_size for p in files),
            "entries": sum(1 for p in files if p.suffix == ".pt2" and not p.name.startswith("."))}


def inductor_cache_dir() -> Path:
    """Inductor's working cache: $TORCHINDUCTOR_CACHE_DIR, else torch's default under /tmp."""
    try:
        from torch._inductor.runtime.cache_dir_utils import cache_dir as inductor_dir  # noqa: PLC0415
    except ImportError:  # another torch layout: its documented default
        import getpass  # noqa: PLC0415
        import tempfile  # noqa: PLC0415

        return Path(os.environ.get("TORCHINDUCTOR_CACHE_DIR")
                    or Path(tempfile.gettempdir()) / f"torchinductor_{getpass.getuser()}")
    return Path(inductor_dir())


def inductor_cache_stats(directory: Path | None = None) -> dict[str, Any]:
    """Path and size in bytes of Inductor's working cache, and of its precompiled headers."""
    directory = directory or inductor_cache_dir()
    files = [p for p in directory.rglob("*") if p.is_file()] if directory.is_dir() else []
    headers = [p for p in files if p.parent.name == "precompiled_headers" and p.suffix == ".gch"]
    return {"path": str(directory), "bytes": sum(p.stat().st_size for p in files),
            "headers": len(headers), "header_bytes": sum(p.stat().st_size for p in headers)}


def clear_cache(directory: Path | None = None) -> int:
    """Empty the cache directory (kept, empty); the number of entries removed."""
    directory = directory or cache_dir()
    removed = cache_stats(directory)["entries"]
    _empty(directory)
    return removed


def clear_inductor_cache(directory: Path | None = None) -> int:
    """Empty Inductor's working cache (kept, empty); the bytes freed. Only while no build runs:
    a build reads its own files back from there."""
    directory = directory or inductor_cache_dir()
    freed = inductor_cache_stats(directory)["bytes"]
    _empty(directory)
    return freed


def _empty(directory: Path) -> None:
    if directory.is_dir():
        for path in directory.iterdir():
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
