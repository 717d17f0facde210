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


def test_leaderboard_entry_shows_where_defaults_come_from():
    import json

    import pandas as pd

    from benchopt_bilevel.params import params_to_dict, provenance
    from benchopt_bilevel.site.render import _leaderboard_table, parameter_sources

    cls = solvers()["soba"]
    defaults = params_to_dict(cls.Params())
    changed = dict(defaults, step_inner=defaults["step_inner"] * 2)
    common = {"rank": 1, "time_median": 1.0, "time_low": 1.0, "time_high": 1.0, "time_ratio": 1.0,
              "final_metric_median": 0.1, "n_reached": 1, "n_runs": 1, "oracle_median": 1.0, "oracle_low": 1.0,
              "oracle_high": 1.0, "peak_memory_median": 1.0, "solver": "soba", "n_ok": 1}
    entries = pd.DataFrame([
        {**common, "solver_label": "soba", "solver_params": json.dumps(defaults)},
        {**common, "solver_label": "soba[step_inner=x]", "solver_params": json.dumps(changed)}])
    sources = parameter_sources(entries.iloc[1])
    assert [name for name, _, _ in sources] == list(defaults)
    assert {name: source for name, _, source in sources}["step_inner"] is None  # set by the entry
    assert all(source == str(provenance(cls.Params)[name]) for name, _, source in sources if name != "step_inner")
    html = _leaderboard_table("t", "p", entries, {}, {})
    default_row, changed_row = html.split('<tr class="entry')[1:]
    where = str(provenance(cls.Params)["step_inner"])
    assert 'class="badge default"' in default_row and 'class="sources">defaults: ' in default_row
    assert f"step_inner={defaults['step_inner']}: default ({where})".replace("'", "&#x27;") in default_row
    assert "badge" not in changed_row and f"step_inner={changed['step_inner']}: set for this entry" in changed_row
