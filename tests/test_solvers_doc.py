"""docs/solvers.md is generated from the registry (scripts/solvers_table.py) and kept fresh."""
from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest

from benchopt_bilevel.registry import solvers

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location("solvers_table", ROOT / "scripts" / "solvers_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_solvers_doc_is_fresh():
    text = (ROOT / "docs" / "solvers.md").read_text()
    assert text == _script().render(), "docs/solvers.md is stale: run python scripts/solvers_table.py"


def test_every_solver_and_default_is_in_the_page():
    text = _script().render()
    for name, cls in solvers().items():
        section = text.split(f"\n### {name}\n", 1)[1].split("\n### ", 1)[0]
        assert cls.reference in section
        for f in dataclasses.fields(cls.Params):
            assert f"| `{f.name}` | `{f.default!r}` |" in section.replace("\\|", "|"), (name, f.name)
        for deviation in cls.deviations:
            assert deviation.replace("\n", " ") in section.replace("\\|", "|")


def test_check_mode_fails_on_a_stale_page(tmp_path):
    script = _script()
    page = tmp_path / "solvers.md"
    page.write_text("# Solvers\n")
    with pytest.raises(SystemExit, match="stale"):
        script.main(["--check", "--output", str(page)])
    script.main(["--output", str(page)])
    script.main(["--check", "--output", str(page)])  # fresh: returns quietly
