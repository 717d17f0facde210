"""Native CPU kernels: C++ files of `csrc/`, compiled once per host and loaded with ctypes.

A kernel here is plain C++ with no torch header (`csrc/*.cpp`, extern "C" functions on raw
pointers), so the system's C++ compiler builds it in about a second, where torch's
`cpp_extension` (torch/extension.h, pybind11, ninja) takes 15 to 30 s. The torch side (shapes,
dtypes, export, vmap, autograd) is a `torch.library` custom op written in Python
(`row_kernels.py`), which also holds the torch composite that runs wherever the library is not
available. The fast path (AOTInductor) calls such an op through torch's dispatcher, so the same
compiled kernel runs eager and fast.

Build: `$CXX` (else g++) with -O3 -march=native (the host's vector instructions, as Inductor's
own builds; -ffast-math is left out so that NaNs propagate), into
`<build cache>/native/<name>-<hash>.so`, the hash covering the source, the compile command, the
compiler's version and the host CPU (a cache shared by cluster nodes keeps one per kind of
node). Written to a temporary name and renamed, so a parallel worker never loads half a file.
`BENCHOPT_BILEVEL_NATIVE=0` turns the kernels off (every op runs its torch composite);
`benchopt-bilevel cache` says whether they built.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .build_cache import cache_dir, host_cpu

SOURCE_DIR = Path(__file__).resolve().parent / "csrc"
NATIVE_ENV = "BENCHOPT_BILEVEL_NATIVE"
COMPILE_TIMEOUT = 120  # seconds; about 1.5 s is usual
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-ffp-contract=fast", "-std=c++17", "-shared", "-fPIC")


def compiler() -> str | None:
    """The C++ compiler's path: $CXX, else g++ on the PATH; None without one."""
    return shutil.which(os.environ.get("CXX") or "g++")


def enabled() -> bool:
    return os.environ.get(NATIVE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


@functools.lru_cache(maxsize=None)
def _compiler_version(path: str) -> str:
    run = subprocess.run([path, "--version"], capture_output=True, text=True, check=False, timeout=COMPILE_TIMEOUT)
    return run.stdout.splitlines()[0] if run.stdout else path


def library_path(name: str, cxx: str) -> Path:
    """Where kernel `name`'s shared library is cached for this source, compiler `cxx` and host."""
    digest = hashlib.sha256()
    for part in ((SOURCE_DIR / f"{name}.cpp").read_bytes(), " ".join(FLAGS).encode(),
                 _compiler_version(cxx).encode(), host_cpu().encode()):
        digest.update(part)
    return cache_dir() / "native" / f"{name}-{digest.hexdigest()[:16]}.so"


def build(name: str) -> Path:
    """Compile kernel `name` unless cached; its library's path. Raises RuntimeError with the
    compiler's first error line."""
    cxx = compiler()
    if cxx is None:
        raise RuntimeError(f"no C++ compiler ({os.environ.get('CXX') or 'g++'} not found; set CXX)")
    target = library_path(name, cxx)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{name}-", suffix=".so")
    os.close(handle)
    try:
        try:
            run = subprocess.run([cxx, *FLAGS, str(SOURCE_DIR / f"{name}.cpp"), "-o", temporary],
                                 capture_output=True, text=True, check=False, timeout=COMPILE_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{Path(cxx).name} took over {COMPILE_TIMEOUT} s on {name}.cpp") from None
        if run.returncode != 0:
            first = next((line for line in run.stderr.splitlines() if "error" in line), run.stderr.strip()[:200])
            raise RuntimeError(f"{Path(cxx).name} failed on {name}.cpp: {first}")
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return target


_loads: dict[str, tuple[ctypes.CDLL | None, str]] = {}  # per kernel asked for: (library or None, status)


def _load(name: str) -> tuple[ctypes.CDLL | None, str]:
    if name not in _loads:
        _loads[name] = _build_and_load(name)
    return _loads[name]


def _build_and_load(name: str) -> tuple[ctypes.CDLL | None, str]:
    if not enabled():
        return None, f"off ({NATIVE_ENV}=0)"
    try:
        path = build(name)
        return ctypes.CDLL(str(path)), f"in use ({path})"
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as error:
        return None, f"not available: {error}"


def reset() -> None:
    """Forget what this process loaded: the next use looks again (after a change of
    $CXX, $BENCHOPT_BILEVEL_NATIVE or the cache directory)."""
    _loads.clear()


def library(name: str) -> ctypes.CDLL | None:
    """Kernel `name` loaded (built on first use in this process), or None: off, or it failed to
    build (`status` says why; the op runs its torch composite)."""
    return _load(name)[0]


def loaded() -> str:
    """The kernels loaded in this process, comma-separated ("" for none): rows record it
    (`provenance`), since a full-batch logistic step's time depends on it."""
    return ",".join(sorted(name for name, (library_, _) in _loads.items() if library_ is not None))


def status(name: str) -> str:
    """One line: whether kernel `name` is in use, and where its library lies or why not."""
    return _load(name)[1]
