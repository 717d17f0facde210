"""The process's memory allocator: which one runs, and starting the command line under a faster one.

A fast-path step on a small problem is a few µs of arithmetic, and the built library allocates
every intermediate and every new carry with 64-byte aligned `posix_memalign`, which glibc's
per-thread cache does not serve: with glibc's allocator about half of such a step is malloc/free
(`speed/profile_fast_step.py`). tcmalloc and jemalloc serve these from per-thread caches. Measured
here (SOBA / AmIGO on ijcnn1, one built library each, best of 128-step calls, 2 runs of
`LD_PRELOAD=... python speed/profile_fast_step.py --solver S --compare S.pt2 --steps 128`):
glibc 12.1–20.2 / 110–128 µs per step, jemalloc 7.8–8.5 / 69–73, tcmalloc 7.1–7.2 / 69–72.
Eager steps gain too, less (their time is mostly dispatch).

An allocator is chosen when a process starts (the dynamic linker's `LD_PRELOAD`), so the command
line re-executes itself once under the preferred one found on the machine (`launch.py`); spawned
workers inherit it. `BENCHOPT_BILEVEL_MALLOC` picks: `auto` (default: tcmalloc, else jemalloc,
else the system's), `tcmalloc`, `jemalloc`, or `system` (glibc's, no re-execution). Every result
row records the allocator that ran it (`allocator` in its provenance): timings and resident
memory depend on it, so compare rows of one allocator.

Why preload a library rather than a caching allocator of our own: tcmalloc (gperftools) and
jemalloc are what PyTorch's own CPU launcher preloads (`torch.backends.xeon.run_cpu`
--enable-tcmalloc / --enable-jemalloc), they are packaged everywhere (Debian
`libtcmalloc-minimal4`, `libjemalloc2`; conda `gperftools`, `jemalloc`), and they serve every
allocation of the process, eager ones included, so eager and fast rows run on the same allocator.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from pathlib import Path

from .errors import UserError

VARIABLE = "BENCHOPT_BILEVEL_MALLOC"
CHOICES = ("auto", "tcmalloc", "jemalloc", "system")
_REEXECUTED = "BENCHOPT_BILEVEL_MALLOC_REEXECUTED"  # set in the re-executed process: never loop

# Library names, by allocator, as the dynamic linker and ctypes.util.find_library know them.
LIBRARIES = {
    "tcmalloc": ("tcmalloc_minimal", "tcmalloc"),
    "jemalloc": ("jemalloc",),
}
PREFERENCE = ("tcmalloc", "jemalloc")


def requested() -> str:
    """The allocator `BENCHOPT_BILEVEL_MALLOC` asks for (auto when unset)."""
    choice = os.environ.get(VARIABLE, "auto").strip().lower() or "auto"
    if choice not in CHOICES:
        raise UserError(f"{VARIABLE}={choice!r}: expected one of {', '.join(CHOICES)}")
    return choice


def _in_prefix(stem: str) -> str | None:
    """lib<stem>.so* under the environment's own lib/ (a conda environment's packages)."""
    folder = Path(sys.prefix) / "lib"
    matches = sorted(folder.glob(f"lib{stem}.so*")) if folder.is_dir() else []
    return str(matches[0]) if matches else None


def library(name: str) -> str | None:
    """The shared library of allocator `name` on this machine (a path or a soname), or None."""
    for stem in LIBRARIES[name]:
        found = _in_prefix(stem) or ctypes.util.find_library(stem)
        if found:
            return found
    return None


def active() -> str:
    """The allocator serving this process: tcmalloc, jemalloc or system."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "system"
    for name in PREFERENCE:
        if any(f"lib{stem}." in maps for stem in LIBRARIES[name]):
            return name
    return "system"


def preferred() -> tuple[str, str | None]:
    """The allocator to run under and its library (None for the system's), per the request."""
    choice = requested()
    if choice == "system":
        return "system", None
    names = PREFERENCE if choice == "auto" else (choice,)
    for name in names:
        found = library(name)
        if found:
            return name, found
    if choice != "auto":
        raise UserError(f"{VARIABLE}={choice}: no {choice} library found on this machine (Debian: "
                        f"apt-get install {'libtcmalloc-minimal4' if choice == 'tcmalloc' else 'libjemalloc2'}); "
                        f"set {VARIABLE}=system to use the system's allocator")
    return "system", None


def environment_for(path: str) -> dict[str, str]:
    """This process's environment with `path` preloaded (and tcmalloc's large-allocation reports,
    one stderr line per allocation over 1 GiB, silenced)."""
    env = dict(os.environ)
    env["LD_PRELOAD"] = " ".join(filter(None, [path, env.get("LD_PRELOAD", "")]))
    env.setdefault("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", str(1 << 62))
    env[_REEXECUTED] = "1"
    return env


def reexecute_under_preferred() -> None:
    """Run this process's command line again under the preferred allocator, if it is not the one
    running (the interpreter's own arguments included: `-m benchopt_bilevel.launch` stays one).

    Returns (doing nothing) on systems without LD_PRELOAD, when the preferred allocator already
    runs or is the system's, and in a process that was already re-executed."""
    if not sys.platform.startswith("linux") or os.environ.get(_REEXECUTED):
        return
    name, path = preferred()
    if path is None or active() == name:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environment_for(path))


def release_free_memory() -> None:
    """Hand the allocator's free memory back to the system (before a resident-memory baseline)."""
    name = active()
    try:
        if name == "tcmalloc":
            ctypes.CDLL(None).MallocExtension_ReleaseFreeMemory()
        elif name == "jemalloc":
            # mallctl("arena.<MALLCTL_ARENAS_ALL>.purge"): every arena's unused dirty pages.
            ctypes.CDLL(None).mallctl(b"arena.4096.purge", None, None, None, ctypes.c_size_t(0))
        else:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
            libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass  # an allocator without the call: the baseline keeps its free memory
