"""The build cache of the fast path (build_cache.py): keys, concurrent builders, corrupt entries,
clearing. The builds here are stand-ins (a file written after a pause) so that the locking and
recovery logic is tested in milliseconds; a real library's hit and build times are measured in
tests/test_fast.py."""
from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from benchopt_bilevel import build_cache
from benchopt_bilevel.cli import main
from benchopt_bilevel.fixtures import build_quadratic
from benchopt_bilevel.registry import get_solver

IDENTITY = {"solver": "soba", "static": {"decay": 0.4}, "dtype": "torch.float64", "state": [["x", [5], "torch.float64"]]}


def _slow_build(count_file: str, pause: float = 0.5):
    """A stand-in build: counts itself in `count_file`, then writes its package after a pause."""
    def build(path: str) -> None:
        with open(count_file, "a") as handle:
            handle.write("built\n")
        time.sleep(pause)
        Path(path).write_text("library")
    return build


def _load(path: str) -> str:
    text = Path(path).read_text()
    if text != "library":
        raise RuntimeError("not a library")
    return text


def _worker(directory: str, count_file: str, out: str) -> None:
    loaded = build_cache.get_or_build(IDENTITY, ["x"], _slow_build(count_file), _load, Path(directory))
    Path(out).write_text(json.dumps({"hit": loaded.hit, "runner": loaded.runner}))


def test_key_changes_with_identity_and_not_with_order():
    same = dict(reversed(list(IDENTITY.items())))
    assert build_cache.cache_key(same) == build_cache.cache_key(IDENTITY)
    assert build_cache.cache_key({**IDENTITY, "dtype": "torch.float32"}) != build_cache.cache_key(IDENTITY)


def test_build_then_hit(tmp_path):
    count = tmp_path / "count"
    first = build_cache.get_or_build(IDENTITY, ["x"], _slow_build(str(count), 0.0), _load, tmp_path / "c")
    second = build_cache.get_or_build(IDENTITY, ["x"], _slow_build(str(count), 0.0), _load, tmp_path / "c")
    assert (first.hit, second.hit) == (False, True)
    assert count.read_text().count("built") == 1
    info = json.loads(next((tmp_path / "c").glob("*.json")).read_text())
    assert info["keys"] == ["x"] and info["identity"] == IDENTITY and info["build_seconds"] >= 0


def test_two_processes_build_one_entry(tmp_path):
    """Two workers asking for one key at once: one builds (the other waits on the lock), both get
    the same valid library, and no temp file is left."""
    directory, count = tmp_path / "c", tmp_path / "count"
    context = multiprocessing.get_context("fork")  # fork: no re-import of torch
    workers = [context.Process(target=_worker, args=(str(directory), str(count), str(tmp_path / f"out{i}")))
               for i in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    outs = [json.loads((tmp_path / f"out{i}").read_text()) for i in range(2)]
    assert count.read_text().count("built") == 1
    assert sorted(o["hit"] for o in outs) == [False, True]
    assert all(o["runner"] == "library" for o in outs)
    assert len(list(directory.glob("*.pt2"))) == 1 and not list(directory.glob(".*"))


@pytest.mark.parametrize("damage", ["package", "metadata", "identity"])
def test_corrupt_entry_is_rebuilt(tmp_path, damage):
    directory, count = tmp_path / "c", tmp_path / "count"
    build_cache.get_or_build(IDENTITY, ["x"], _slow_build(str(count), 0.0), _load, directory)
    key = build_cache.cache_key(IDENTITY)
    if damage == "package":
        (directory / f"{key}.pt2").write_bytes(b"\x00garbage")
    elif damage == "metadata":
        (directory / f"{key}.json").write_text("{not json")
    else:
        (directory / f"{key}.json").write_text(json.dumps({"identity": {"other": 1}, "keys": ["x"]}))
    again = build_cache.get_or_build(IDENTITY, ["x"], _slow_build(str(count), 0.0), _load, directory)
    assert again.hit is False and again.runner == "library"
    assert count.read_text().count("built") == 2
    assert build_cache.get_or_build(IDENTITY, ["x"], _slow_build(str(count), 0.0), _load, directory).hit


def test_failed_build_leaves_no_entry(tmp_path):
    def broken(path: str) -> None:
        Path(path).write_text("half")
        raise RuntimeError("compiler crashed")

    with pytest.raises(RuntimeError, match="compiler crashed"):
        build_cache.get_or_build(IDENTITY, ["x"], broken, _load, tmp_path)
    assert not list(tmp_path.glob("*.pt2")) and not list(tmp_path.glob(".*"))


def test_cache_command_prints_and_clears(tmp_path):
    directory = tmp_path / "builds"
    for identity in (IDENTITY, {**IDENTITY, "dtype": "torch.float32"}):
        build_cache.get_or_build(identity, ["x"], _slow_build(str(tmp_path / "count"), 0.0), _load, directory)
    runner = CliRunner()
    env = {build_cache.CACHE_ENV: str(directory)}
    shown = runner.invoke(main, ["cache"], env=env)
    assert shown.exit_code == 0, shown.output
    assert str(directory) in shown.output.replace("\n", "") and "2 build(s)" in shown.output
    cleared = runner.invoke(main, ["cache", "--clear"], env=env)
    assert cleared.exit_code == 0, cleared.output
    assert "removed 2 build(s)" in cleared.output and "0 build(s)" in cleared.output
    assert directory.is_dir() and not list(directory.iterdir())


def test_default_directory(monkeypatch):
    monkeypatch.delenv(build_cache.CACHE_ENV, raising=False)
    assert build_cache.cache_dir() == Path("~/.cache/benchopt-bilevel/builds").expanduser()
    monkeypatch.setenv(build_cache.CACHE_ENV, "/somewhere/else")
    assert build_cache.cache_dir() == Path("/somewhere/else")


def test_cache_command_reports_and_clears_inductors_cache(tmp_path):
    inductor = tmp_path / "inductor"
    (inductor / "precompiled_headers").mkdir(parents=True)
    (inductor / "precompiled_headers" / "c1.h.gch").write_bytes(b"h" * 2**20)
    (inductor / "precompiled_headers" / "c1.h").write_text("#include <torch.h>")
    (inductor / "ab").mkdir()
    (inductor / "ab" / "kernel.so").write_bytes(b"k" * 2**19)
    runner = CliRunner()
    env = {build_cache.CACHE_ENV: str(tmp_path / "builds"), "TORCHINDUCTOR_CACHE_DIR": str(inductor)}
    shown = runner.invoke(main, ["cache"], env=env)
    assert shown.exit_code == 0, shown.output
    assert str(inductor) in shown.output.replace("\n", "")
    assert "1.5 MiB, of which 1 precompiled header(s) 1.0 MiB" in shown.output
    cleared = runner.invoke(main, ["cache", "--clear-inductor"], env=env)
    assert cleared.exit_code == 0, cleared.output
    assert "freed 1.5 MiB" in cleared.output and "0.0 MiB, of which 0 precompiled" in cleared.output
    assert inductor.is_dir() and not list(inductor.iterdir())


def test_a_choice_is_decided_once_per_identity(tmp_path):
    decided = []

    def decide(path: str):
        return lambda: decided.append(path) or {"path": path}

    assert build_cache.remembered_choice(IDENTITY, decide("eager"), tmp_path) == ({"path": "eager"}, False)
    assert build_cache.remembered_choice(IDENTITY, decide("fast"), tmp_path) == ({"path": "eager"}, True)
    other = {**IDENTITY, "dtype": "torch.float32"}
    assert build_cache.remembered_choice(other, decide("fast"), tmp_path) == ({"path": "fast"}, False)
    assert decided == ["eager", "fast"]
    [record] = tmp_path.glob(f"{build_cache.cache_key(IDENTITY)}.auto.json")
    record.write_text("{half")  # corrupt: decided again
    assert build_cache.remembered_choice(IDENTITY, decide("fast"), tmp_path) == ({"path": "fast"}, False)
    build_cache.clear_cache(tmp_path)
    assert build_cache.remembered_choice(IDENTITY, decide("eager"), tmp_path) == ({"path": "eager"}, False)


def test_racing_workers_get_one_choice(tmp_path):
    def decide(path: str):
        def slow() -> dict:
            time.sleep(0.2)
            return {"path": path}
        return slow

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        got = list(pool.map(lambda path: build_cache.remembered_choice(IDENTITY, decide(path), tmp_path),
                            ["eager", "fast"]))
    assert got[0][0] == got[1][0] and sorted(hit for _, hit in got) == [False, True]


def test_the_host_cpu_is_part_of_a_cpu_build_identity(monkeypatch):
    assert build_cache.host_cpu()  # model, and a hash of the feature flags where the OS lists them
    solver, problem = get_solver("soba")(), build_quadratic()
    state = {"x": problem.x0(), "y": problem.y0()}
    identity = build_cache.build_identity(solver, problem, state, torch.float64, torch.device("cpu"))
    assert identity["host"] == build_cache.host_cpu()
    monkeypatch.setattr(build_cache, "host_cpu", lambda: "another CPU [0123456789ab]")
    other = build_cache.build_identity(solver, problem, state, torch.float64, torch.device("cpu"))
    assert build_cache.cache_key(other) != build_cache.cache_key(identity)
