"""The JAX reference benchmark's solver specs replay here: every line of its tuned ijcnn1
configuration translates, the errors are one clear line, and our own specs are unchanged."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from benchopt_bilevel import registry
from benchopt_bilevel.benchmark import expand, spec_notes
from benchopt_bilevel.cli import main
from benchopt_bilevel.config import BenchmarkSpec, load_config
from benchopt_bilevel.errors import UserError
from benchopt_bilevel.params import build_params
from benchopt_bilevel.reference_specs import (CENTRAL_KEYS, declared_reference, for_tuning, parse_reference_spec,
                                              translate)
from benchopt_bilevel.solver import Solver

# benchmark_bilevel, config/ijcnn1_best_params.yml (the `solver:` list, verbatim).
IJCNN1_BEST = """\
AmIGO[batch_size=64,eval_freq=131072,framework=numba,n_inner_steps=10,outer_ratio=0.31622776601683794,step_size=0.125,random_state=[1, 2, 3, 4, 5, 6, 7, 8, 9, 10],framework=numba]
MRBO[batch_size=64,eta=0.5,eval_freq=131072,framework=numba,n_shia_steps=10,outer_ratio=0.03162277660168379,step_size=0.5,random_state=[1, 2, 3, 4, 5, 6, 7, 8, 9, 10],framework=numba]
VRBO[batch_size=64,eval_freq=131072,framework=numba,n_inner_steps=10,n_shia_steps=10,outer_ratio=1.0,period_frac=0.5,step_size=0.0625,random_state=[1, 2, 3, 4, 5, 6, 7, 8, 9, 10],framework=numba]
SABA[batch_size=64,eval_freq=131072,framework=numba,init_memory=zero,outer_ratio=1.0,step_size=0.125,random_state=[1, 2, 3, 4, 5, 6, 7, 8, 9, 10],framework=numba]
StocBiO[batch_size=64,eval_freq=131072,framework=numba,n_inner_steps=10,n_shia_steps=10,outer_ratio=1.0,step_size=0.125,random_state=[1, 2, 3, 4, 5, 6, 7, 8, 9, 10],framework=numba]
SRBA[batch_size=64,eval_freq=131072,framework=numba,outer_ratio=1.0,period_frac=0.5,step_size=0.25,random_state=[1, 2, 3, 4, 5, 6, 7, 8, 9, 10],framework=numba]
PZOBO[eval_freq=1,framework=numba,mu=0.01,n_gaussian_vectors=1,n_inner_steps=10,outer_ratio=0.31622776601683794,step_size=0.5,random_state=[1, 2, 3, 4, 5, 6, 7, 8, 9, 10],framework=numba]
Optuna[random_state=[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]
FSLA[batch_size=64,eval_freq=131072,framework=numba,outer_ratio=0.01,step_size=0.03125,random_state=[1, 2, 3, 4, 5, 6, 7, 8, 9, 10],framework=numba]
SUSTAIN[batch_size=64,eta=0.5,eval_freq=131072,framework=numba,n_hia_steps=10,outer_ratio=0.1,step_size=0.5,random_state=[1, 2, 3, 4, 5, 6, 7, 8, 9, 10],framework=numba]
SOBA[batch_size=64,eval_freq=131072,framework=numba,outer_ratio=0.01,step_size=0.03125,random_state=[1, 2, 3, 4, 5, 6, 7, 8, 9, 10],framework=numba]
TTSA[batch_size=64,eval_freq=131072,framework=numba,n_hia_steps=10,outer_ratio=0.03162277660168379,step_size=0.5,random_state=[1, 2, 3, 4, 5, 6, 7, 8, 9, 10],framework=numba]
BSA[batch_size=64,eval_freq=131072,framework=numba,n_hia_steps=10,n_inner_steps=10,outer_ratio=0.01,step_size=0.5,random_state=[1, 2, 3, 4, 5, 6, 7, 8, 9, 10],framework=numba]
""".splitlines()
SEEDS = tuple(range(1, 11))
ROOT = Path(__file__).resolve().parent.parent


# -- stand-in solvers: each line's translation, independent of how the solver files name things -------
def _stand_in(name: str, reference_name: str, mapping: dict[str, str]) -> type[Solver]:
    """A solver named `name` whose parameters are the targets of `mapping` (all floats but the
    strings given as such), declaring `reference_name` and `mapping`."""
    fields = [(ours, str if ours == "memory_init" else float, dataclasses.field(default=0))
              for ours in dict.fromkeys(mapping.values())]
    params = dataclasses.make_dataclass(f"{name}Params", fields)
    return type(name, (Solver,), {"name": name, "reference_name": reference_name,
                                  "reference_params": mapping, "Params": params})


STEP = {"step_size": "step_inner", "outer_ratio": "outer_ratio"}
STAND_INS = {cls.name: cls for cls in [
    _stand_in("amigo", "AmIGO", {**STEP, "n_inner_steps": "n_inner_steps"}),
    _stand_in("mrbo", "MRBO", {**STEP, "eta": "momentum", "n_shia_steps": "n_neumann_steps"}),
    _stand_in("vrbo", "VRBO", {**STEP, "n_inner_steps": "n_inner_steps", "n_shia_steps": "n_neumann_steps",
                               "period_frac": "period_frac"}),
    _stand_in("saba", "SABA", {**STEP, "init_memory": "memory_init"}),
    _stand_in("stocbio", "StocBiO", {**STEP, "n_inner_steps": "n_inner_steps", "n_shia_steps": "n_neumann_steps"}),
    _stand_in("srba", "SRBA", {**STEP, "period_frac": "period_frac"}),
    _stand_in("esj", "PZOBO", {**STEP, "mu": "smoothing", "n_gaussian_vectors": "n_directions",
                               "n_inner_steps": "n_inner_steps"}),
    _stand_in("fsla", "FSLA", STEP),
    _stand_in("sustain", "SUSTAIN", {**STEP, "eta": "momentum", "n_hia_steps": "n_neumann_terms"}),
    _stand_in("soba", "SOBA", STEP),
    _stand_in("ttsa", "TTSA", {**STEP, "n_hia_steps": "n_neumann_terms"}),
    _stand_in("bsa", "BSA", {**STEP, "n_hia_steps": "n_neumann_terms", "n_inner_steps": "n_inner_steps"}),
    _stand_in("aid-cg", "", {"step_inner": "step_inner"}),  # not in the reference
]}
STAND_INS_WITH_OPTUNA = {**STAND_INS, "tpe": _stand_in("tpe", "Optuna", {})}

# What each line asks, in our names (the tuned ijcnn1 values of the reference benchmark).
EXPECTED = {
    "AmIGO": ("amigo", {"step_inner": 0.125, "outer_ratio": 0.31622776601683794, "n_inner_steps": 10}),
    "MRBO": ("mrbo", {"step_inner": 0.5, "outer_ratio": 0.03162277660168379, "momentum": 0.5, "n_neumann_steps": 10}),
    "VRBO": ("vrbo", {"step_inner": 0.0625, "outer_ratio": 1.0, "n_inner_steps": 10, "n_neumann_steps": 10,
                      "period_frac": 0.5}),
    "SABA": ("saba", {"step_inner": 0.125, "outer_ratio": 1.0, "memory_init": "zero"}),
    "StocBiO": ("stocbio", {"step_inner": 0.125, "outer_ratio": 1.0, "n_inner_steps": 10, "n_neumann_steps": 10}),
    "SRBA": ("srba", {"step_inner": 0.25, "outer_ratio": 1.0, "period_frac": 0.5}),
    "PZOBO": ("esj", {"step_inner": 0.5, "outer_ratio": 0.31622776601683794, "smoothing": 0.01, "n_directions": 1,
                      "n_inner_steps": 10}),
    "FSLA": ("fsla", {"step_inner": 0.03125, "outer_ratio": 0.01}),
    "SUSTAIN": ("sustain", {"step_inner": 0.5, "outer_ratio": 0.1, "momentum": 0.5, "n_neumann_terms": 10}),
    "SOBA": ("soba", {"step_inner": 0.03125, "outer_ratio": 0.01}),
    "TTSA": ("ttsa", {"step_inner": 0.5, "outer_ratio": 0.03162277660168379, "n_neumann_terms": 10}),
    "BSA": ("bsa", {"step_inner": 0.5, "outer_ratio": 0.01, "n_neumann_terms": 10, "n_inner_steps": 10}),
}


def _value(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def test_every_reference_line_is_expected():
    names = [line.partition("[")[0] for line in IJCNN1_BEST]
    assert sorted(names) == sorted([*EXPECTED, "Optuna"])


@pytest.mark.parametrize("line", [line for line in IJCNN1_BEST if not line.startswith("Optuna")],
                         ids=lambda line: line.partition("[")[0])
def test_reference_line_translates(line):
    (translation,) = translate(line, STAND_INS)
    solver, params = EXPECTED[line.partition("[")[0]]
    assert translation.solver == solver
    assert {k: _value(v) for k, v in translation.params.items()} == params
    assert translation.seeds == SEEDS
    pzobo = line.startswith("PZOBO")  # deterministic in the reference: no batch size
    assert translation.problem_params == ({} if pzobo else {"batch_size": "64"})
    assert any("eval_freq=" in note and "ignored" in note for note in translation.notes)
    assert any("framework=numba ignored" in note for note in translation.notes)
    assert translation.spec.startswith(f"{solver}[")
    build_params(STAND_INS[solver].Params, translation.params, solver)  # types convert


def test_optuna_line_needs_a_solver_that_replays_it():
    line = next(line for line in IJCNN1_BEST if line.startswith("Optuna"))
    with pytest.raises(UserError, match="unknown solver 'Optuna'"):
        translate(line, STAND_INS)
    (translation,) = translate(line, STAND_INS_WITH_OPTUNA)
    assert (translation.solver, translation.params, translation.seeds) == ("tpe", {}, SEEDS)


def test_parse_lists_repeated_keys_and_case():
    name, values = parse_reference_spec("SOBA[Step_Size=0.1, random_state=[1, 2],framework=numba,framework=numba]")
    assert (name, values) == ("SOBA", {"step_size": "0.1", "random_state": ["1", "2"], "framework": "numba"})
    assert parse_reference_spec("SABA[init_memory='zero']")[1] == {"init_memory": "zero"}
    assert parse_reference_spec("soba") == ("soba", {})


def test_names_in_any_case():
    for spec in ("sOBa[step_size=0.5]", "Soba[step_size=0.5]", "SOBA[STEP_SIZE=0.5]"):
        (translation,) = translate(spec, STAND_INS)
        assert (translation.solver, translation.params) == ("soba", {"step_inner": "0.5"})
    (translation,) = translate("AID-CG[step_inner=2]", STAND_INS)
    assert (translation.solver, translation.params) == ("aid-cg", {"step_inner": "2"})


def test_our_specs_unchanged():
    for spec, params in (("soba", {}), ("soba[step_inner=0.1,outer_ratio=2]", {"step_inner": "0.1", "outer_ratio": "2"})):
        (translation,) = translate(spec, STAND_INS)
        assert (translation.solver, translation.params, translation.seeds, translation.notes) == ("soba", params, None, ())
        assert translation.problem_params == {}
    # our names and the reference's mix in one spec
    (translation,) = translate("SOBA[step_size=0.5,outer_ratio=3]", STAND_INS)
    assert translation.params == {"step_inner": "0.5", "outer_ratio": "3"}


def test_list_values_expand_as_a_grid():
    translations = translate("SOBA[step_size=[0.1, 0.2],outer_ratio=[1, 10],random_state=3]", STAND_INS)
    assert [t.params for t in translations] == [
        {"step_inner": "0.1", "outer_ratio": "1"}, {"step_inner": "0.1", "outer_ratio": "10"},
        {"step_inner": "0.2", "outer_ratio": "1"}, {"step_inner": "0.2", "outer_ratio": "10"}]
    assert all(t.seeds == (3,) for t in translations)


@pytest.mark.parametrize("spec, message", [
    ("SOBA[stepsize=0.1]", "has no parameter 'stepsize'; the reference's names accepted: step_size, outer_ratio, "
                           "random_state, batch_size, eval_freq, framework; ours: step_inner, outer_ratio"),
    ("SOBA[framework=numba,framework=jax]", "'framework' given twice with different values"),
    ("SOBA[step_size=0.1,step_inner=0.2]", "'step_inner' given twice with different values"),
    ("SOBA[random_state=[1, a]]", "random_state must be an integer or a list of integers"),
    ("SOBA[random_state=-1]", "non-negative"),
    ("SOBA[batch_size=[32, 64]]", "batch_size is a problem parameter here and takes one value"),
    ("SOBA[step_size=[0.1, 0.2]", "cannot parse"),
    ("SOBA[step_size]", "expected key=value"),
    ("SOBAA[step_size=[0.1]]", "unknown solver 'SOBAA'. Did you mean soba"),
    ("aid-cg[step_inner=[1, 2]]", "cannot parse"),  # not in the reference: lists are not ours
])
def test_errors_are_one_line(spec, message):
    with pytest.raises(UserError) as error:
        translate(spec, STAND_INS)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_two_solvers_claiming_one_reference_name():
    table = {**STAND_INS, "soba2": _stand_in("soba2", "SOBA", STEP)}
    with pytest.raises(UserError, match="both declare the reference name 'SOBA'"):
        translate("soba", table)


def test_a_subclass_does_not_inherit_the_reference_name():
    variant = type("soba-variant", (STAND_INS["soba"],), {"name": "soba-variant"})
    table = {**STAND_INS, "soba-variant": variant}
    assert translate("SOBA[step_size=1]", table)[0].solver == "soba"
    with pytest.raises(UserError, match="has no parameter 'step_size'"):
        build_params(variant.Params, translate("soba-variant[step_size=1]", table)[0].params, "soba-variant")


# -- the benchmark: seeds and the problem's batch size -------------------------------------------------
SMALL = "quadratic[n_inner=64,n_outer=64,dim_x=5,dim_y=5,batch_size=8]"


@pytest.fixture
def reference_soba(monkeypatch):
    """The registry with our soba declaring the reference's SOBA (whatever soba.py declares now)."""
    real = registry.solvers()
    soba = type("soba", (real["soba"],), {"reference_name": "SOBA", "reference_params": dict(STEP)})
    table = {**real, "soba": soba}
    monkeypatch.setattr(registry, "solvers", lambda: table)
    return soba


def test_expand_seeds_and_batch_size(reference_soba):
    spec = BenchmarkSpec(problems=["quadratic[dim_x=5]"],
                         solvers=["SOBA[batch_size=16,step_size=0.5,random_state=[4, 5]]", "soba"])
    cells = expand(spec)
    assert [(c.solver, c.seed, c.problem_params, c.solver_params) for c in cells] == [
        ("soba", 4, {"dim_x": "5", "batch_size": "16"}, {"step_inner": "0.5"}),
        ("soba", 5, {"dim_x": "5", "batch_size": "16"}, {"step_inner": "0.5"}),
        ("soba", 0, {"dim_x": "5"}, {})]
    assert "SOBA: batch_size=16 set on quadratic for its runs (a problem parameter here)" in spec_notes(spec)


def test_expand_checks_batch_size_given_on_the_problem(reference_soba):
    same = BenchmarkSpec(problems=["quadratic[batch_size=64]"], solvers=["SOBA[batch_size=64.0]"])
    assert [c.problem_params for c in expand(same)] == [{"batch_size": "64"}]
    other = BenchmarkSpec(problems=["quadratic[batch_size=32]"], solvers=["SOBA[batch_size=64]"])
    with pytest.raises(UserError, match=r"batch_size=64 but the problem has quadratic\[batch_size=32\]; "
                                        "batch_size is a problem parameter here: put it on the problem"):
        expand(other)


def test_expand_problem_without_batch_size(reference_soba, monkeypatch):
    @dataclass
    class NoBatch:
        dim: int = 3

    fake = type("Fake", (), {"Params": NoBatch})
    monkeypatch.setattr("benchopt_bilevel.benchmark.get_problem", lambda name: fake)
    with pytest.raises(UserError, match="batch_size is a problem parameter here and fake has none"):
        expand(BenchmarkSpec(problems=["fake"], solvers=["SOBA[batch_size=64]"]))


def test_expand_seed_conflict(reference_soba):
    spec = BenchmarkSpec(problems=["quadratic"], solvers=["SOBA[random_state=[1, 2]]"], seeds=[2, 1])
    assert [c.seed for c in expand(spec)] == [1, 2]  # the same seeds: no conflict
    spec.seeds = [0, 1]
    with pytest.raises(UserError, match=r"SOBA: random_state asks seeds \[1, 2\] but the run has seeds \[0, 1\]"):
        expand(spec)


def test_for_tuning(reference_soba):
    line = "SOBA[batch_size=64,framework=numba,step_size=0.5,random_state=[1, 2]]"
    specs, notes = for_tuning(line, "quadratic")  # the problem's default batch size is 64
    assert specs == ["soba[step_inner=0.5]"]
    assert any("random_state ignored" in note for note in notes) and any("framework=numba" in note for note in notes)
    assert for_tuning("soba[step_inner=0.1]", "quadratic") == (["soba[step_inner=0.1]"], [])
    with pytest.raises(UserError, match=r"batch_size=64 but the problem has batch_size=8; batch_size is a problem "
                                        r"parameter here: put it on the problem \('quadratic\[batch_size=64\]'\)"):
        for_tuning(line, SMALL)


def test_a_benchopt_config_gets_a_clear_error(tmp_path):
    config = tmp_path / "ijcnn1_best_params.yml"
    config.write_text(yaml.safe_dump({"objective": ["Bilevel Optimization"], "dataset": ["ijcnn1"],
                                      "solver": IJCNN1_BEST[:1], "n-repetitions": 1}))
    result = CliRunner().invoke(main, ["run", "--config", str(config)])
    assert result.exit_code != 0 and "is a benchopt configuration" in result.output
    assert "reference's solver lines work as written there" in result.output and "Traceback" not in result.output


def test_shipped_config_replays():
    """configs/reference-ijcnn1-best.yml: every line expands to its 10 seeds on the problem, batch 64."""
    config = load_config(ROOT / "configs" / "reference-ijcnn1-best.yml")
    names = [line.partition("[")[0] for line in config["solvers"]]
    assert config["solvers"] == [line for line in IJCNN1_BEST if not line.startswith("Optuna")]
    cells = expand(BenchmarkSpec(config["problems"], config["solvers"]))
    assert len(cells) == 10 * len(names)
    assert {c.problem_params["batch_size"] for c in cells} == {"64"}
    assert [c.seed for c in cells] == list(SEEDS) * len(names)


def test_run_config_replays_reference_specs(reference_soba, tmp_path):
    config = tmp_path / "reference.yml"
    config.write_text(yaml.safe_dump({
        "problems": [SMALL], "max_steps": 3, "n_evals": 2,
        "solvers": ["SOBA[batch_size=8,eval_freq=131072,framework=numba,outer_ratio=0.01,step_size=0.03125,"
                    "random_state=[1, 2],framework=numba]"]}))
    result = CliRunner().invoke(main, ["run", "--config", str(config), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    rows = pd.concat(pd.read_parquet(path) for path in (tmp_path / "out").glob("*.parquet"))
    assert sorted(rows["seed"].unique()) == [1, 2]
    assert set(rows["solver"]) == {"soba"}
    (params,) = set(rows["solver_params"])
    step = json.loads(params)
    assert math.isclose(step["step_inner"], 0.03125) and math.isclose(step["outer_ratio"], 0.01)


# -- the registry: every solver the reference has, once it declares its names ---------------------------
def _declared():
    names = {cls: declared_reference(cls)[0] for cls in registry.solvers().values()}
    return {name.lower(): cls for cls, name in names.items() if name}


@pytest.mark.parametrize("line", IJCNN1_BEST, ids=lambda line: line.partition("[")[0])
def test_registry_replays_reference_line(line):
    declared = _declared()
    if not declared:
        pytest.skip("no solver declares its reference_name yet")
    name, values = parse_reference_spec(line)
    if name.lower() not in declared:
        if name == "Optuna":  # a black-box baseline: replayed only where a solver declares it
            with pytest.raises(UserError, match="unknown solver 'Optuna'"):
                translate(line)
            return
        pytest.fail(f"no solver declares the reference name {name!r}")
    cls = declared[name.lower()]
    (translation,) = translate(line)
    assert translation.solver == cls.name and translation.seeds == SEEDS
    params = build_params(cls.Params, translation.params, cls.name)
    for key, value in values.items():
        if key not in CENTRAL_KEYS:
            ours = declared_reference(cls)[1][key]
            got = getattr(params, ours)
            assert got == _value(value) or str(got) == value, (key, ours, got, value)


def test_run_prints_what_a_reference_spec_translation_ignored(tmp_path):
    from click.testing import CliRunner

    from benchopt_bilevel.cli import main

    result = CliRunner().invoke(main, ["run", "-p", "quadratic[n_inner=64,n_outer=64,dim_x=5,dim_y=5,batch_size=8]",
                                       "-s", "SOBA[step_size=0.1,eval_freq=5,framework=numba]", "--max-steps", "2",
                                       "--n-evals", "2", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "eval_freq" in result.output and "framework" in result.output


def test_tune_takes_reference_specs(tmp_path):
    from click.testing import CliRunner

    from benchopt_bilevel.cli import main

    problem = "quadratic[n_inner=64,n_outer=64,dim_x=5,dim_y=5,batch_size=8]"
    result = CliRunner().invoke(main, ["tune", "--problem", problem, "--solver", "SOBA[outer_ratio=0.5,framework=numba]",
                                       "--n-trials", "1", "--tuning-seeds", "0", "--fresh-seeds", "1",
                                       "--max-steps", "2", "--n-evals", "2", "--path", "eager", "--output-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "framework" in result.output
    artefacts = list(tmp_path.glob("tuning-*.yaml"))
    assert artefacts and "outer_ratio: 0.5" in artefacts[0].read_text()
