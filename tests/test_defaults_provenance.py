"""Every solver parameter says where its default comes from: the paper, the reference benchmark
or this suite (with the reason), and `list solvers` shows it."""
from __future__ import annotations

import dataclasses

import pytest
from click.testing import CliRunner

from benchopt_bilevel.cli import main
from benchopt_bilevel.params import SOURCES, provenance
from benchopt_bilevel.registry import solvers


@pytest.mark.parametrize("name", sorted(solvers()))
def test_every_default_has_a_provenance(name):
    params_cls = solvers()[name].Params
    for field in dataclasses.fields(params_cls):
        source = provenance(params_cls)[field.name]
        assert source is not None, f"{name}.{field.name} does not say where its default comes from"
        assert source.source in SOURCES
        if source.source in ("paper", "ours"):
            assert source.note.strip(), f"{name}.{field.name}: a {source.source} default says where or why"


def test_docstrings_call_the_paper_only_what_the_paper_gives():
    """'the paper's' in a parameter comment is for paper-sourced defaults only (checked loosely:
    the Params source lines that mention the paper carry a paper provenance)."""
    import inspect

    for name, cls in solvers().items():
        source = inspect.getsource(cls.Params)
        sources = provenance(cls.Params)
        for line in source.splitlines():
            stripped = line.strip()
            if ":" not in stripped or "=" not in stripped or stripped.startswith(("#", '"')):
                continue
            field = stripped.split(":")[0].strip()
            if field in sources and "the paper's" in stripped.split("#", 1)[-1] and "#" in stripped:
                assert sources[field] is not None and sources[field].source == "paper", (name, field)


def test_list_solvers_shows_the_provenance():
    result = CliRunner().invoke(main, ["list", "solvers"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "paper:" in result.output and ("reference" in result.output or "ours:" in result.output)
