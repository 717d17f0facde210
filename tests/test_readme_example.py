"""The README's one-file solver walkthrough works as written: found by name, and it goes through
every row of the conformance suite (the compile table included) that a registered solver does,
passing each."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITE = [str(ROOT / "tests" / name) for name in ("test_conformance.py", "test_conformance_compile.py")]
PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]


def _rows(ids: list[str], name: str) -> set[str]:
    """The test ids parametrized by solver `name` ("test_x[name]", "test_y[name-dtype0]")."""
    return {i for i in ids if re.search(rf"\[{re.escape(name)}[\]-]", i)}


def test_readme_solver_example_passes_the_conformance_suite(tmp_path):
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(\"\"\"My method.*?)```", text, re.S)
    assert block, "the README's solver example is missing"
    (tmp_path / "my_method.py").write_text(block.group(1))
    env = {**os.environ, "BENCHOPT_BILEVEL_SOLVERS_PATH": str(tmp_path)}

    collected = subprocess.run([*PYTEST, "--collect-only", "-q", *SUITE], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=300)
    assert collected.returncode == 0, collected.stdout[-2000:] + collected.stderr[-2000:]
    ids = [line for line in collected.stdout.splitlines() if "::" in line]
    mine = _rows(ids, "my-method")
    # The same rows as a registered solver: found by name, no row of the suite left out.
    assert {i.replace("[my-method", "[soba") for i in mine} == _rows(ids, "soba")
    assert any("test_conformance_compile.py" in i for i in mine)

    result = subprocess.run([*PYTEST, "-q", *SUITE, "-k", "my-method"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert re.search(rf"\b{len(mine)} passed\b", summary), summary
    assert not re.search(r"failed|error|skipped|xfail|xpass", summary), summary
