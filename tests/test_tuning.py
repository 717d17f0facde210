"""The tuning protocol: quasi-random trials, equal budgets, selection, fresh seeds, a replayable artefact."""
from __future__ import annotations

import math

import pytest
import yaml
from click.testing import CliRunner
from conftest import WELL_CONDITIONED

from benchopt_bilevel import tuning
from benchopt_bilevel.cli import main
from benchopt_bilevel.config import load_config
from benchopt_bilevel.errors import UserError
from benchopt_bilevel.results import load_results
from benchopt_bilevel.runner import RunConfig
from benchopt_bilevel.solver import Choice, IntRange, LogUniform

PROBLEM = "quadratic[" + ",".join(f"{k}={v}" for k, v in WELL_CONDITIONED.items()) + "]"


def test_halton_points_are_the_radical_inverses():
    points = tuning.halton(4, 2)
    assert points[:, 0].tolist() == [0.5, 0.25, 0.75, 0.125]  # base 2
    assert points[:, 1].tolist() == pytest.approx([1 / 3, 2 / 3, 1 / 9, 4 / 9])  # base 3
    shifted = tuning.halton(4, 2, shift_seed=1)
    assert ((shifted >= 0) & (shifted < 1)).all() and not (shifted == points).all()
    assert (tuning.halton(4, 2, shift_seed=1) == shifted).all()  # seeded: reproducible


def test_trials_cover_the_search_space():
    space = {"lr": LogUniform(1e-3, 1.0), "k": IntRange(1, 4), "kind": Choice(("a", "b"))}
    trials = tuning.sample_trials(space, 16)
    assert len(trials) == 16
    assert all(1e-3 <= t["lr"] <= 1.0 and t["k"] in (1, 2, 3, 4) and t["kind"] in ("a", "b") for t in trials)
    assert {t["k"] for t in trials} == {1, 2, 3, 4} and {t["kind"] for t in trials} == {"a", "b"}
    assert all(t["lr"] == float(f"{t['lr']:.4g}") for t in trials)  # what runs is what the artefact says
    # low discrepancy: 16 log-uniform draws fall 4 times in each quarter of the (log) range
    draws = [t["lr"] for t in tuning.sample_trials({"lr": LogUniform(1e-3, 1.0)}, 16)]
    quarters = [min(3, int(4 * math.log(lr / 1e-3) / math.log(1e3) + 1e-3)) for lr in draws]  # 1e-3: rounding
    assert [quarters.count(q) for q in range(4)] == [4, 4, 4, 4]
    assert tuning.sample_trials({}, 3) == [{}, {}, {}]
    with pytest.raises(UserError):
        tuning.sample_trials(space, 0)


def test_selection_by_median_time_then_final_metric():
    def score(time, final):
        return {"time_to_target_median": time, "final_metric_median": final}

    assert tuning.select_trial([score(2.0, 0.1), score(1.0, 0.5), score(3.0, 0.0)]) == 1
    assert tuning.select_trial([score(math.inf, 0.3), score(math.inf, 0.2), score(math.inf, math.nan)]) == 1
    assert tuning.select_trial([score(1.0, 0.2), score(1.0, 0.2)]) == 0  # then trial index


def test_plan_checks_before_running():
    with pytest.raises(UserError, match="fresh seeds must differ"):
        tuning.TuningPlan(PROBLEM, ["soba"], tuning_seeds=[0, 1], fresh_seeds=[1, 2]).check()
    with pytest.raises(UserError, match="listed twice"):
        tuning.TuningPlan(PROBLEM, ["soba", "soba[step_inner=0.1]"]).check()
    with pytest.raises(UserError):
        tuning.TuningPlan(PROBLEM, ["no-such-solver"]).check()
    assert tuning.format_spec("soba", {"step_inner": 0.05, "flag": True}) == "soba[step_inner=0.05,flag=true]"


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """One small tuning of two solvers (3 trials x 2 tuning seeds, 2 fresh seeds, 40 steps per run)."""
    output = tmp_path_factory.mktemp("tuned")
    plan = tuning.TuningPlan(problem=PROBLEM, solvers=["soba", "saba[outer_ratio=1.0]"], n_trials=3,
                             tuning_seeds=[0, 1], fresh_seeds=[100, 101], label="test quadratic",
                             run=RunConfig(max_time=10.0, max_steps=40, n_evals=5, dtype="float64"))
    artefact = tuning.tune(plan, output)
    path = tuning.write_artefact(artefact, output / "tuning-test.yaml")
    return output, artefact, path


def test_every_solver_gets_the_same_budget(tuned):
    output, artefact, _ = tuned
    reports = artefact["tuning"]["solvers"]
    assert set(reports) == {"soba", "saba"}
    assert artefact["tuning"]["budget"] == {"trials": 3, "tuning_seeds": 2, "runs_per_solver": 6, "max_time": 10.0,
                                            "max_steps": 40, "stop_at_target": True}
    trial_runs = load_results(output / "trials").drop_duplicates("run_id")
    for name, report in reports.items():
        assert report["n_trials"] == 3 and len(report["trials"]) == report["n_distinct"] == 3
        assert (trial_runs["solver"] == name).sum() == 3 * 2  # every distinct trial on every tuning seed
        assert set(trial_runs.loc[trial_runs["solver"] == name, "seed"]) == {0, 1}
    # the fixed parameter is kept and not searched
    assert reports["saba"]["fixed"] == {"outer_ratio": 1.0}
    assert set(reports["saba"]["search_space"]) == {"step_inner", "memory_init"}
    assert all(t["params"].keys() == {"step_inner", "memory_init"} for t in reports["saba"]["trials"])


def test_selection_and_fresh_evaluation(tuned):
    output, artefact, _ = tuned
    fresh = load_results(output).drop_duplicates("run_id")
    assert set(fresh["seed"]) == {100, 101}  # only fresh seeds go to the leaderboard results
    for name, report in artefact["tuning"]["solvers"].items():
        assert report["selected_trial"] == tuning.select_trial(report["trials"])
        assert report["selected"] == report["trials"][report["selected_trial"]]["params"]
        assert report["fresh_score"]["n_runs"] == 2
        runs = fresh[fresh["solver"] == name]
        assert len(runs) == 2 and runs["solver_params"].nunique() == 1
        params = yaml.safe_load(runs["solver_params"].iloc[0])
        assert all(params[k] == v for k, v in {**report["fixed"], **report["selected"]}.items())


def test_artefact_is_labelled_versioned_and_replays_with_run_config(tuned, tmp_path):
    output, artefact, path = tuned
    assert path.read_text().startswith("# benchopt-bilevel tuning artefact test quadratic (format version 1)")
    read = tuning.read_artefact(path)
    assert read["tuning"]["label"] == "test quadratic" and read["tuning"]["version"] == tuning.ARTEFACT_VERSION
    assert read["tuning"]["problem"] == PROBLEM and read["seeds"] == [100, 101]
    assert tuning.find_artefacts(output) == [path]
    config = load_config(path)  # a valid run configuration
    assert config["solvers"] == [r["spec"] for r in read["tuning"]["solvers"].values()]
    replay = tmp_path / "replay"
    result = CliRunner().invoke(main, ["run", "--config", str(path), "-o", str(replay)])
    assert result.exit_code == 0, result.output
    # the replay runs exactly the cells of the fresh evaluation: same run identities
    assert set(load_results(replay)["run_id"]) == set(load_results(output)["run_id"])


def test_artefact_of_another_version_is_refused(tuned, tmp_path):
    _, artefact, _ = tuned
    future = tmp_path / "future.yaml"
    future.write_text(yaml.safe_dump({**artefact, "tuning": {**artefact["tuning"], "version": 99}}))
    with pytest.raises(UserError, match="version 99 is not supported"):
        tuning.read_artefact(future)
    plain = tmp_path / "plain.yaml"
    plain.write_text("problems: [quadratic]\n")
    with pytest.raises(UserError, match="not a tuning artefact"):
        tuning.read_artefact(plain)


def test_tune_command(tmp_path):
    artefact = tmp_path / "a.yaml"
    result = CliRunner().invoke(main, [
        "tune", "--problem", PROBLEM, "--solver", "soba", "--n-trials", "2", "--tuning-seeds", "0",
        "--fresh-seeds", "7", "--max-steps", "20", "--n-evals", "3", "--label", "cli", "--path", "eager",
        "--output-dir", str(tmp_path / "out"), "--artefact", str(artefact)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(str(artefact))
    assert tuning.read_artefact(artefact)["tuning"]["solvers"]["soba"]["n_trials"] == 2
    bad = CliRunner().invoke(main, ["tune", "--problem", PROBLEM, "--solver", "soba", "--tuning-seeds", "1",
                                    "--fresh-seeds", "1", "--output-dir", str(tmp_path / "bad")])
    assert bad.exit_code == 1 and "fresh seeds must differ" in bad.output


@pytest.mark.parametrize("args, message", [
    (["--jobs", "0"], "--jobs"),
    (["--executor", "ray"], "--executor"),
    (["--timeout", "-1"], "--timeout"),
    (["--executor", "slurm", "--slurm-option", "account"], "expected KEY=VALUE"),
])
def test_tune_takes_the_execution_options_of_run(tmp_path, args, message):
    output = tmp_path / "out"
    result = CliRunner().invoke(main, ["tune", "--problem", PROBLEM, "--solver", "soba", "--n-trials", "1",
                                       "--max-steps", "5", "--output-dir", str(output), *args])
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output
    assert not output.exists()


def test_tune_resumes_in_its_output_directory(tmp_path):
    """A second identical `tune` (inline executor) reruns nothing and selects the same trials."""
    args = ["tune", "--problem", PROBLEM, "--solver", "soba", "--n-trials", "2", "--tuning-seeds", "0,1",
            "--fresh-seeds", "7", "--max-steps", "20", "--n-evals", "3", "--executor", "inline", "--path", "eager",
            "--output-dir", str(tmp_path / "out"), "--artefact", str(tmp_path / "a.yaml")]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    files = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*.parquet")}
    assert len(files) == 2 * 2 + 1
    artefact = tuning.read_artefact(tmp_path / "a.yaml")
    second = CliRunner().invoke(main, args)
    assert second.exit_code == 0, second.output
    assert "4 of 4 tuning runs already complete" in second.output and "1 of 1 fresh runs already complete" in second.output
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*.parquet")} == files
    again = tuning.read_artefact(tmp_path / "a.yaml")
    assert again["tuning"]["solvers"] == artefact["tuning"]["solvers"]  # the same runs, the same selection
