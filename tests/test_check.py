"""`benchopt-bilevel check`: the conformance rules on a solver file kept outside the repository,
run as its author would, from the installed package (a subprocess in a folder away from tests/)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchopt_bilevel.cli import main
from benchopt_bilevel.cli_check import PATH_VARIABLE, solver_file
from benchopt_bilevel.conformance import RULES, SLOW_RULES
from benchopt_bilevel.registry import solvers

README = Path(__file__).resolve().parents[1] / "README.md"
FAST_RULES = [name for name in RULES if name not in SLOW_RULES]


def _readme_solver() -> str:
    block = re.search(r"```python\n(\"\"\"My method.*?)```", README.read_text(), re.S)
    assert block, "the README's solver example is missing"
    return block.group(1)


def _write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(source)
    return path


def _check(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != PATH_VARIABLE}
    return subprocess.run([sys.executable, "-m", "benchopt_bilevel.cli", "check", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def _marks(output: str) -> dict[str, str]:
    """rule name -> ✓ or ✗, from the one line per rule."""
    return {m.group(2): m.group(1) for m in re.finditer(r"^([✓✗]) (\S+)", output, re.M)}


def test_a_correct_outside_solver_passes_every_rule(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    path = _write(tmp_path / "elsewhere", "my_method.py", _readme_solver())
    result = _check(str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert _marks(result.stdout) == {name: "✓" for name in RULES}
    assert "my-method passes all 8 rules" in result.stdout
    assert all(len(line) <= 80 for line in result.stdout.splitlines())


def test_a_graph_break_fails_the_compile_rule(tmp_path):
    # a Python branch on a value read with .item(): a graph break under fullgraph=True
    source = _readme_solver().replace(
        "        hypergradient = grad_x_f - cross\n",
        "        hypergradient = grad_x_f - cross\n"
        "        if hypergradient.abs().max().item() > 1e30:\n"
        "            hypergradient = torch.zeros_like(hypergradient)\n")
    assert ".item() > 1e30" in source
    path = _write(tmp_path, "reads_a_value.py", source)
    result = _check(str(path), "--rule", "metadata", "--rule", "compile", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr[-2000:]
    assert _marks(result.stdout) == {"metadata": "✓", "compile": "✗"}
    assert "my-method fails 1 of 2 rules: compile" in result.stdout
    assert "fix: no .item()" in result.stdout
    assert all(len(line) <= 80 for line in result.stdout.splitlines())


def test_a_wrong_oracle_cost_fails_the_oracle_cost_rule(tmp_path):
    source = _readme_solver().replace('"grad_outer": 1}', '"grad_outer": 2}')
    assert '"grad_outer": 2}' in source
    path = _write(tmp_path, "miscounts.py", source)
    result = _check(str(path), "--skip-slow", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr[-2000:]
    assert _marks(result.stdout) == {name: "✗" if name == "oracle-cost" else "✓" for name in FAST_RULES}
    assert "grad_outer 2 counted, 4 declared" in result.stdout  # two steps
    assert "my-method fails 1 of 6 rules: oracle-cost" in result.stdout
    assert "fix: make oracle_cost(facts) return" in result.stdout


def test_a_registered_solver_by_name(tmp_path):
    result = _check("soba", "--skip-slow", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert _marks(result.stdout) == {name: "✓" for name in FAST_RULES}
    assert "(not run: convergence, compile)" in result.stdout
    assert all(len(line) <= 80 for line in result.stdout.splitlines())


@pytest.mark.parametrize("target, message", [
    ("sobaa", "unknown solver 'sobaa'. Did you mean soba"),
    ("missing.py", "no solver file missing.py"),
    ("no_solver.py", "no_solver.py defines no Solver subclass with a `name`"),
    ("broken.py", "cannot load broken.py: SyntaxError"),
    ("notes.txt", "notes.txt is not a Python file"),
])
def test_bad_targets_are_one_line_and_exit_2(tmp_path, monkeypatch, target, message):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, "no_solver.py", "from benchopt_bilevel.solver import Solver\n\n\nclass Unnamed(Solver):\n    pass\n")
    _write(tmp_path, "broken.py", "def oops(:\n")
    _write(tmp_path, "notes.txt", "not a solver\n")
    result = CliRunner().invoke(main, ["check", target])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"Error: {message}")
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_the_file_is_registered_while_checked_only(tmp_path, monkeypatch):
    monkeypatch.delenv(PATH_VARIABLE, raising=False)
    _write(tmp_path, "other.py", "raise RuntimeError('a sibling file is never loaded')\n")
    path = _write(tmp_path, "my_method.py", _readme_solver())
    with solver_file(path) as classes:
        assert [cls.name for cls in classes] == ["my-method"]
        assert solvers()["my-method"] is classes[0]  # what run_cell finds by name
    assert PATH_VARIABLE not in os.environ
    assert "my-method" not in solvers()
