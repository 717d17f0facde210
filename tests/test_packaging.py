"""The package installs whole: every engine subpackage is listed in pyproject.toml, and a
non-editable install (a wheel) finds the plugin folders as subpackages and runs the CLI."""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _listed_packages() -> set[str]:
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])


def test_every_engine_subpackage_is_listed():
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "benchopt_bilevel").rglob("__init__.py")}
    missing = sorted(found - _listed_packages())
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"


@pytest.mark.slow
def test_wheel_install_lists_plugins(tmp_path):
    # A fresh venv that sees this environment's dependencies (torch etc.) through a .pth line
    # (appended after its own site-packages, and without running this environment's editable
    # install hook), with our wheel installed in its own site-packages.
    wheel_dir = tmp_path / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheel_dir), str(ROOT)], check=True, capture_output=True, timeout=300)
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    ours = subprocess.run([sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "dependencies.pth").write_text(ours + "\n")
    wheel = next(wheel_dir.glob("*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                    "--force-reinstall", str(wheel)], check=True, capture_output=True, timeout=300)
    # Run from elsewhere so the checkout is not on the path; the wheel's copy must be the one used.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    listed = subprocess.run([str(python), "-c", "import benchopt_bilevel, sys; from benchopt_bilevel.cli import main; "
                             "from benchopt_bilevel.registry import solvers, problems; from benchopt_bilevel import native; "
                             "print(benchopt_bilevel.__file__); print(sorted(solvers())); print(sorted(problems())); "
                             "print((native.SOURCE_DIR / 'sigmoid_row_mean.cpp').is_file())"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr[-2000:]
    location, solver_names, problem_names, kernel_source = listed.stdout.strip().splitlines()
    assert str(ROOT) not in location, location
    assert kernel_source == "True", "the wheel lacks benchopt_bilevel/csrc/*.cpp (package-data)"
    assert "soba" in solver_names and "quadratic" in problem_names
