"""`tune` survives `kill -9`: the same command resumes, no trial run is lost and none is repeated."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from benchopt_bilevel import tuning
from benchopt_bilevel.resume import COMPLETE, run_status
from benchopt_bilevel.results import load_results

PROBLEM = "quadratic[n_inner=64,n_outer=64,dim_x=5,dim_y=5,batch_size=8]"
TRIALS, TUNING_SEEDS = 3, (0, 1)
RUNS = TRIALS * len(TUNING_SEEDS)


def _tune(output: Path) -> list[str]:
    # Runs of 0.5 s of steps each (to the end: --no-stop-at-target), so the kill lands mid-way.
    return [sys.executable, "-m", "benchopt_bilevel.cli", "tune", "--problem", PROBLEM, "--solver", "soba",
            "--n-trials", str(TRIALS), "--tuning-seeds", ",".join(map(str, TUNING_SEEDS)), "--fresh-seeds", "100",
            "--max-time", "0.5", "--n-evals", "3", "--no-stop-at-target", "--label", "resume",
            "--output-dir", str(output), "--jobs", "1", "--threads", "1", "--timeout", "120", "--path", "eager"]


def _complete(directory: Path) -> dict[str, tuple[int, int]]:
    """Complete run files in `directory`: name -> (inode, mtime in ns); a rewrite changes both."""
    found = {}
    for path in directory.glob("*.parquet"):
        if run_status(path) in COMPLETE:
            stat = path.stat()
            found[path.name] = (stat.st_ino, stat.st_mtime_ns)
    return found


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and the parent-death signal")
def test_kill_9_then_the_same_tune_command_resumes(tmp_path):
    output = tmp_path / "out"
    trials = output / "trials"
    process = subprocess.Popen(_tune(output), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while len(_complete(trials)) < 2:  # some trial runs finished, others not yet
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "no trial run finished within 90 s"
        time.sleep(0.05)
    workers = _children(process.pid)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stderr.close()
    for _ in range(100):  # the workers die with it (parent-death signal): nothing writes any more
        if not any(_alive(pid) for pid in workers):
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"worker processes {workers} outlived the killed tune")
    before = _complete(trials)
    assert 2 <= len(before) < RUNS, "tune ended before it could be killed: make its runs longer"
    assert not list(output.glob("*.yaml"))  # no artefact from the interrupted pass

    rerun = subprocess.run(_tune(output), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(before)} of {RUNS} tuning runs already complete in {trials}/, reused" in rerun.stderr
    assert f"; {RUNS - len(before)} to run" in rerun.stderr

    # Nothing lost: every trial on every tuning seed has one complete file; the artefact is written.
    artefact = tuning.read_artefact(Path(rerun.stdout.strip().splitlines()[-1]))
    report = artefact["tuning"]["solvers"]["soba"]
    assert report["n_distinct"] == TRIALS and all(t["n_runs"] == len(TUNING_SEEDS) for t in report["trials"])
    after = _complete(trials)
    assert len(after) == RUNS == len(list(trials.glob("*.parquet")))
    finals = load_results(trials).query("final")
    assert len(finals) == RUNS and set(finals["status"]) <= set(COMPLETE)
    tuned = sorted(report["search_space"])
    ran = {(tuple(yaml.safe_load(params)[k] for k in tuned), seed)
           for params, seed in zip(finals["solver_params"], finals["seed"])}
    assert ran == {(tuple(t["params"][k] for k in tuned), seed) for t in report["trials"] for seed in TUNING_SEEDS}
    # Nothing repeated: the runs complete before the kill were reused, their files untouched.
    assert {name: after[name] for name in before} == before
    assert set(load_results(output)["seed"]) == {100}  # the fresh evaluation, at the top level
