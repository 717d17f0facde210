"""The reference leaderboard's scripts: the protocol file is validated before anything runs (one
line per mistake), and the "who leads where" table is computed from a bundle made of real runs.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import WELL_CONDITIONED

from benchopt_bilevel import scoring
from benchopt_bilevel.cli import main
from benchopt_bilevel.config import parse_seeds
from benchopt_bilevel.publishing import load_bundle, read_manifest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import leaderboard_table  # noqa: E402
import reference_leaderboard  # noqa: E402

SCRIPT = REPO / "scripts" / "reference_leaderboard.py"
PROBLEM = "quadratic[" + ",".join(f"{k}={v}" for k, v in WELL_CONDITIONED.items()) + "]"


@pytest.mark.parametrize("variant", ["full", "quick"])
def test_shipped_protocol_is_valid_and_gives_every_solver_the_same_budget(variant, capsys):
    protocol = reference_leaderboard.load_protocol(reference_leaderboard.CONFIG, variant)
    assert reference_leaderboard.main(["--check", *(["--quick"] if variant == "quick" else [])]) == 0
    commands = capsys.readouterr().out.splitlines()
    assert len(commands) == len(protocol["problems"]) + 1 and "publish" in commands[-1]
    for command in commands[:-1]:  # one tune per problem, every solver in it, one budget
        assert all(f"--solver {solver} " in command for solver in protocol["solvers"])
        assert f"--n-trials {protocol['n_trials']} " in command and f"--max-time {protocol['max_time']} " in command
    assert len(parse_seeds(str(protocol["fresh_seeds"]))) >= 3


def test_a_code_change_starts_a_new_results_folder(tmp_path):
    """Runs of older code stay in their folder: `publish` of a folder ranks every run in it."""
    for directory in reference_leaderboard.CODE_DIRS:
        shutil.copytree(REPO / directory, tmp_path / directory, ignore=shutil.ignore_patterns("__pycache__"))
    before = reference_leaderboard.code_hash(tmp_path)
    assert before == reference_leaderboard.code_hash(REPO)
    (tmp_path / "benchopt_bilevel" / "csrc" / "sigmoid_row_mean.cpp").write_text("// changed\n")
    assert reference_leaderboard.code_hash(tmp_path) != before


def _protocol_with(tmp_path: Path, mistake: dict) -> Path:
    config = yaml.safe_load(reference_leaderboard.CONFIG.read_text())
    config["quick"].update(mistake)
    path = tmp_path / "protocol.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_unknown_solver_ends_the_script_with_one_line(tmp_path):
    path = _protocol_with(tmp_path, {"solvers": ["soba", "not-a-solver"]})
    out = subprocess.run([sys.executable, str(SCRIPT), "--config", str(path), "--quick"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == "" and not (tmp_path / "results").exists()
    assert len(out.stderr.strip().splitlines()) == 1 and out.stderr.startswith("error: ")
    assert "unknown solver 'not-a-solver'" in out.stderr


@pytest.mark.parametrize("mistake, message", [
    ({"problems": ["quadratic[dim_q=3]"]}, "dim_q"),
    ({"solvers": ["soba[step_inner=fast]"]}, "step_inner"),
    ({"fresh_seeds": "100,101"}, "at least 3"),
    ({"tuning_seeds": "0,100", "fresh_seeds": "100-102"}, "overlap"),
    ({"budget": 3}, "unknown key(s) budget"),
])
def test_a_mistake_in_the_protocol_ends_with_one_line(tmp_path, capsys, mistake, message):
    path = _protocol_with(tmp_path, mistake)
    assert reference_leaderboard.main(["--config", str(path), "--quick"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and len(out.err.strip().splitlines()) == 1 and out.err.startswith("error: ")
    assert message in out.err


def test_make_target_runs_the_script():
    if shutil.which("make") is None:
        pytest.skip("no make")
    out = subprocess.run(["make", "-n", "-o", ".venv/.installed", "leaderboard", "QUICK=1"],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "scripts/reference_leaderboard.py --quick" in out.stdout


def test_table_of_a_tiny_bundle(tmp_path):
    """tune (two solvers, three fresh seeds) -> publish -> the table: leader and runner-up are the
    leaderboard's rank 1 and 2, and the provenance line comes from the manifest."""
    results, site = tmp_path / "results", tmp_path / "site"
    runner = CliRunner()
    out = runner.invoke(main, ["tune", "--problem", PROBLEM, "--solver", "soba", "--solver", "saba",
                               "--n-trials", "2", "--tuning-seeds", "0", "--fresh-seeds", "100-102",
                               "--max-steps", "60", "--n-evals", "6", "--dtype", "float64",
                               "--executor", "inline", "--label", "tiny", "--path", "eager", "--output-dir", str(results)])
    assert out.exit_code == 0, out.output
    out = runner.invoke(main, ["publish", str(results), "--site", str(site)])
    assert out.exit_code == 0, out.output
    bundle = site / "bundle"

    text = leaderboard_table.table(bundle)
    entries = scoring.summary(scoring.run_table(load_bundle(bundle))).sort_values("rank")
    manifest = read_manifest(bundle)
    lines = text.splitlines()
    assert lines[0].startswith(f"Bundle of {manifest['provenance']['last_timestamp'][:10]} ({manifest['runs']} ")
    assert "2 trials × 1 tuning seed(s) per solver, 3 fresh seeds" in lines[0]
    rows = [line for line in lines if line.startswith(f"| {entries['device_class'].iloc[0]} |")]
    assert len(rows) == 1  # one problem
    cells = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert cells[2].startswith(f"**{entries['solver_label'].iloc[0]}**")
    assert cells[3].startswith(f"**{entries['solver_label'].iloc[1]}**")
    first = entries.iloc[0]
    assert f"{int(first['n_reached'])}/3 runs at target" in cells[2]
    assert "(eager)" not in text and "mix step paths" not in text  # one path: nothing to say

    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{leaderboard_table.START}\nold\n{leaderboard_table.END}\n\n## rest\n")
    leaderboard_table.update_readme(readme, text)
    content = readme.read_text()
    assert "old" not in content and text in content
    assert content.startswith("# title\n") and content.endswith(f"{leaderboard_table.END}\n\n## rest\n")
