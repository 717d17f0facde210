"""The asv regression suite runs in the current environment on two solvers, one sample per
benchmark (as `--quick`, which does not save results), and each benchmark kind leaves a number
in asv's results file (a smoke test; the full
suite over every solver: `asv run --python=same --set-commit-hash $(git rev-parse HEAD)`).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASV = shutil.which("asv", path=str(Path(sys.executable).parent)) or shutil.which("asv")
SOLVERS = "soba,itd"

pytestmark = [
    pytest.mark.skipif(ASV is None, reason="pip install asv (in the test extra)"),
    pytest.mark.skipif(not (ROOT / ".git").exists(), reason="asv needs a git checkout"),
]


def _config(tmp_path: Path) -> Path:
    # The repository's config, with results written to the temporary directory.
    text = re.sub(r"^\s*//.*$", "", (ROOT / "asv.conf.json").read_text(), flags=re.M)
    config = json.loads(text)
    config.update(repo=str(ROOT), benchmark_dir=str(ROOT / "speed" / "asv"),
                  results_dir=str(tmp_path / "results"), html_dir=str(tmp_path / "html"),
                  env_dir=str(tmp_path / "env"))
    path = tmp_path / "asv.conf.json"
    path.write_text(json.dumps(config))
    return path


def test_asv_quick_run_records_every_benchmark_kind(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path), BENCHOPT_BILEVEL_ASV_SOLVERS=SOLVERS,
               BENCHOPT_BILEVEL_ASV_SCALE_RUNS="0",  # the Scale suite takes minutes
               BENCHOPT_BILEVEL_ASV_FAST="0")  # FastStep builds a library (a minute)
    config = _config(tmp_path)
    # asv saves results of an existing environment only when told which commit they belong to.
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    subprocess.run([ASV, "machine", "--yes", "--machine", "ci", "--config", str(config)],
                   env=env, check=True, capture_output=True, timeout=60)
    done = subprocess.run(
        [ASV, "run", "--python=same", "-a", "repeat=1", "-a", "rounds=1", "-a", "number=1",
         "-a", "warmup_time=0", "--set-commit-hash", commit,
         "--machine", "ci", "--config", str(config), "--show-stderr"],
        env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    files = [p for p in (tmp_path / "results" / "ci").glob("*.json") if p.name != "machine.json"]
    assert len(files) == 1, files
    results = json.loads(files[0].read_text())["results"]
    kinds = {"benchmarks.Step.time_step", "benchmarks.ToTarget.track_time_to_target",
             "benchmarks.ToTarget.track_oracle_calls_per_step", "benchmarks.Memory.peakmem_run",
             "benchmarks.RowPass.time_inner_step"}
    assert kinds <= set(results), sorted(results)
    for kind in kinds:
        values = results[kind][0]  # one value per solver (RowPass: per kernel, also 2)
        assert len(values) == 2 and all(v is not None and v > 0 for v in values), (kind, values)
