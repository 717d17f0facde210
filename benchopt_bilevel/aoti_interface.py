"""AOTInductor's runtime interface compiled once per toolchain, not once per library.

Every CPU wrapper AOTInductor generates (torch 2.13) starts with the same ~650 lines: the
extern "C" functions a loader calls (`AOTInductorModelContainerCreate`, `...Run`, the constant
and input queries), which instantiate the model container and its constant maps; and the
generated model's constructor instantiates the model's base class template, whose constructor
parses the device string with std::regex. Here the wrapper's source is split in two
(`split_interface`): the interface, identical for every graph, with the base's instantiation, is
compiled once into an object file kept next to Inductor's own cache (`interface_object`, keyed
by its text and the compile command), and the graph's part is compiled per build and linked
with it (`fast_options.with_runtime_interface_compiled_once`). g++ on SOBA's wrapper (ijcnn1,
AMD EPYC, -O1 with the precompiled header): whole 7.5 s in every build; split, the graph's part
2.9 s in every build and the interface 6.6 s once (docs/compile.md).

The split is textual and conservative: it happens only when the interface ends where torch 2.13
ends it and the graph's part names nothing the interface defines; otherwise the wrapper is left
whole and compiled as before.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

INTERFACE_END = '} // extern "C"'
# What the interface defines for itself: the graph's part must not use any of it.
INTERFACE_NAMES = ("CONVERT_EXCEPTION_TO_ERROR_CODE", "AOTI_VECTOR_SIZE_CHECK", "AOTINoGradGuard",
                   "g_aoti_last_error", "createModelImpl", "AOTInductorModelContainerCreate")


# The model's base class template, instantiated for the generated model once in the interface's
# object: the graph's part declares it instantiated elsewhere (`extern template`), so it does not
# compile the base's members again (its constructor parses the device string with std::regex):
# SOBA's graph part 4.6 -> 2.9 s of g++.
MODEL_BASE = "torch::aot_inductor::AOTInductorModelBase<torch::aot_inductor::AOTInductorModel>"
MODEL_BASE_CALL = ": AOTInductorModelBase("  # the generated constructor's base initializer


def _leading_includes(text: str) -> str:
    """The first lines of `text` that are includes, comments or blank (the headers both parts need)."""
    lines = []
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped and not stripped.startswith(("#include", "//")):
            break
        lines.append(line)
    return "".join(lines)


def split_interface(code: str) -> tuple[str, str] | None:
    """(interface source, graph source) of a generated CPU wrapper, or None to keep it whole.

    The interface is the text up to and including the line that closes its extern "C" block,
    then the model base's explicit instantiation; the graph's source is the wrapper's leading
    includes, the base's `extern template` declaration, then everything after that line."""
    marker = "\n" + INTERFACE_END + "\n"
    end = code.find(marker)
    if end < 0:
        return None
    interface, rest = code[:end + len(marker)], code[end + len(marker):]
    if "AOTInductorModelContainerRun(" not in interface or any(name in rest for name in INTERFACE_NAMES):
        return None
    if MODEL_BASE_CALL not in rest:  # a generated model that does not derive from the base as in 2.13
        return interface, _leading_includes(interface) + rest
    return (f"{interface}template class {MODEL_BASE};\n",
            f"{_leading_includes(interface)}extern template class {MODEL_BASE};\n{rest}")


def object_path(source: str, command: str, directory: Path) -> Path:
    """Where the object of `source` compiled by `command` (the compiler command line, paths
    included, that identifies the toolchain and flags) is kept in `directory`."""
    key = hashlib.sha256(f"{command}\0{source}".encode()).hexdigest()[:32]
    return directory / f"interface_{key}.o"


def interface_object(source: str, command: str, directory: Path, compile_to: Callable[[Path], str | Path]) -> Path:
    """The object file of `source` (`object_path`), compiled by `compile_to(source_path) ->
    object_path` if it is not there yet. Parallel builders are safe: one holds `<key>.lock`
    while the others wait, and the object is renamed into place complete."""
    target = object_path(source, command, directory)
    if target.exists():
        return target
    key = target.stem.removeprefix("interface_")
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / f"interface_{key}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not target.exists():
                with tempfile.TemporaryDirectory(dir=directory) as scratch:
                    source_path = Path(scratch) / f"interface_{key}.cpp"
                    source_path.write_text(source)
                    os.replace(compile_to(source_path), target)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return target


def compile_object(command: str, target: str) -> str:
    """Run one compile `command` (a CppBuilder's command line) that writes `target`; raise with
    the compiler's last lines if it fails. For compiles run on a worker thread while the build
    goes on, outside torch's own compile helper (whose timing records belong to the build's
    thread)."""
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(shlex.split(command), cwd=Path(target).parent, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = done.stdout.decode(errors="replace").strip().splitlines()[-20:]
        raise RuntimeError(f"compiling {Path(target).name} failed:\n" + "\n".join(tail))
    return target
