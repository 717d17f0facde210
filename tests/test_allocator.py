"""The command line re-executes itself under the preferred allocator, and rows say which ran."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from benchopt_bilevel import allocator
from benchopt_bilevel.errors import UserError

PRINT_ACTIVE = ("from benchopt_bilevel import allocator; allocator.reexecute_under_preferred(); "
                "print(allocator.active())")


def _need(name: str) -> None:
    """Skip without the library, except in CI, where scripts/system-deps.sh installs it."""
    if allocator.library(name) is None:
        message = f"no {name} library on this machine (Debian: scripts/system-deps.sh installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _active_after_reexecution(choice: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "BENCHOPT_BILEVEL_MALLOC_REEXECUTED")}
    env[allocator.VARIABLE] = choice
    return subprocess.run([sys.executable, "-c", PRINT_ACTIVE], env=env, capture_output=True, text=True,
                          timeout=120)


def test_a_bad_choice_is_one_clear_error(monkeypatch):
    monkeypatch.setenv(allocator.VARIABLE, "hoard")
    with pytest.raises(UserError, match="expected one of auto, tcmalloc, jemalloc, system"):
        allocator.requested()


def test_an_explicit_allocator_that_is_missing_is_one_clear_error(monkeypatch):
    monkeypatch.setenv(allocator.VARIABLE, "jemalloc")
    monkeypatch.setattr(allocator, "library", lambda name: None)
    with pytest.raises(UserError, match="no jemalloc library found.*BENCHOPT_BILEVEL_MALLOC=system"):
        allocator.preferred()


def test_auto_falls_back_to_the_system_allocator_when_none_is_installed(monkeypatch):
    monkeypatch.delenv(allocator.VARIABLE, raising=False)
    monkeypatch.setattr(allocator, "library", lambda name: None)
    assert allocator.preferred() == ("system", None)


def test_system_runs_without_reexecution():
    result = _active_after_reexecution("system")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "system"


@pytest.mark.parametrize("name", ["tcmalloc", "jemalloc"])
def test_the_process_runs_again_under_the_requested_allocator(name):
    _need(name)
    result = _active_after_reexecution(name)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == name


def test_auto_prefers_tcmalloc():
    _need("tcmalloc")
    assert _active_after_reexecution("auto").stdout.strip() == "tcmalloc"


def test_the_command_line_rejects_a_bad_choice_in_one_line():
    env = dict(os.environ, **{allocator.VARIABLE: "hoard"})
    result = subprocess.run([sys.executable, "-m", "benchopt_bilevel", "--version"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: BENCHOPT_BILEVEL_MALLOC='hoard': expected one of auto, tcmalloc, jemalloc, system"]


def test_release_free_memory_runs_under_the_allocator_in_use():
    allocator.release_free_memory()  # glibc's malloc_trim here; the others in the subprocess below
    for name in ("tcmalloc", "jemalloc"):
        if allocator.library(name) is None:
            continue
        env = dict(os.environ, **{allocator.VARIABLE: name})
        code = ("from benchopt_bilevel import allocator; allocator.reexecute_under_preferred(); "
                "import torch; t = torch.ones(1 << 24); del t; allocator.release_free_memory(); "
                "print(allocator.active())")
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == name


def test_rows_record_the_allocator():
    import torch

    from benchopt_bilevel.provenance import provenance

    assert provenance(torch.device("cpu"))["allocator"] == allocator.active()
