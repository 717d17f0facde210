"""Scoring on hand-made result tables whose answers are worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from benchopt_bilevel import scoring
from benchopt_bilevel.errors import UserError
from benchopt_bilevel.summary import failure_notes

CPU = ("cpu", "Test CPU")
GPU = ("cuda", "Test GPU")
TARGETS = {"p1": ("value", 0.1), "p2": ("value", 0.1)}


def run_rows(run_id, problem, solver, seed, times, values, *, status="ok", device=CPU, oracle_per_second=10.0,
             solver_params="{}", peak=1000.0):
    """The long-format rows of one run: one per evaluation (time, objective_value)."""
    rows = []
    for step, (time, value) in enumerate(zip(times, values)):
        rows.append({"run_id": run_id, "problem": problem, "solver": solver, "seed": seed, "step": step,
                     "time": float(time), "oracle_total": oracle_per_second * time, "objective_value": value,
                     "status": status, "final": step == len(times) - 1, "device": device[0],
                     "device_name": device[1], "problem_params": "{}", "solver_params": solver_params,
                     "dtype": "float64", "compiled": False, "peak_memory_bytes": peak, "message": ""})
    return rows


def reaching_at(t_reach, run_id, problem, solver, seed, **kwargs):
    """A run whose value drops below 0.1 at exactly time t_reach (evaluations at t_reach/2, t_reach, 2 t_reach)."""
    return run_rows(run_id, problem, solver, seed, [t_reach / 2, t_reach, 2 * t_reach], [1.0, 0.05, 0.01],
                    **kwargs)


def table(*runs):
    return pd.DataFrame([row for run in runs for row in run])


# -- per run ------------------------------------------------------------------------------------
def test_time_to_target_is_first_time_at_or_below_target():
    results = table(run_rows("a", "p1", "s", 0, [0.5, 1.0, 2.0, 3.0], [1.0, 0.2, 0.1, 0.01]))
    runs = scoring.run_table(results, TARGETS)
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["reached"]
    assert run["time_to_target"] == 2.0  # 0.1 <= 0.1: reached at the third evaluation
    assert run["oracle_to_target"] == 20.0
    assert run["final_metric"] == 0.01 and run["final_time"] == 3.0 and run["final_step"] == 3


def test_missed_target_is_infinite_and_keeps_status():
    results = table(run_rows("a", "p1", "s", 0, [1.0, 2.0], [1.0, math.nan], status="diverged"),
                    run_rows("b", "p1", "s", 1, [1.0, 2.0], [0.05, math.inf], status="diverged"))
    runs = scoring.run_table(results, TARGETS).set_index("run_id")
    assert math.isinf(runs.loc["a", "time_to_target"]) and math.isinf(runs.loc["a", "oracle_to_target"])
    assert not runs.loc["a", "reached"]
    assert runs.loc["a", "status"] == "diverged"
    # reached first, diverged afterwards: the time is kept, and so is the status
    assert runs.loc["b", "time_to_target"] == 1.0 and runs.loc["b", "status"] == "diverged"


def test_target_override_and_documented_target():
    results = table(run_rows("a", "p1", "s", 0, [1.0, 2.0, 3.0], [1.0, 0.5, 0.2]))
    assert math.isinf(scoring.run_table(results, TARGETS)["time_to_target"].iloc[0])
    assert scoring.run_table(results, {"p1": 0.5})["time_to_target"].iloc[0] == 2.0
    with pytest.raises(UserError, match="no target for problem 'p1'"):
        scoring.run_table(results)
    assert not scoring.run_table(results, strict=False)["reached"].iloc[0]
    quadratic = scoring.problem_target("quadratic")
    assert quadratic.column == "objective_relative_suboptimality" and quadratic.value > 0
    assert scoring.parse_target("quadratic:grad_norm2=1e-6") == ("quadratic", ("grad_norm2", 1e-6))
    with pytest.raises(UserError):
        scoring.parse_target("quadratic=fast")


# -- quantiles and medians over seeds -----------------------------------------------------------
def test_quantiles_with_infinities():
    assert scoring.median([3.0, 1.0, 2.0]) == 2.0
    assert scoring.quantile([1.0, 2.0, 3.0], 0.2) == pytest.approx(1.4)
    assert scoring.quantile([1.0, 2.0, 3.0], 0.8) == pytest.approx(2.6)
    assert scoring.median([1.0, 2.0, math.inf]) == 2.0
    assert math.isinf(scoring.quantile([1.0, 2.0, math.inf], 0.8))  # interpolates towards +inf
    assert math.isinf(scoring.median([1.0, math.inf]))  # a solver failing half its seeds has no median
    assert math.isinf(scoring.median([math.inf, math.inf]))  # numpy would give NaN here
    assert math.isnan(scoring.median([]))


def test_summary_medians_ratios_statuses_and_rank():
    results = table(
        reaching_at(1.0, "a0", "p1", "fast", 0), reaching_at(2.0, "a1", "p1", "fast", 1),
        reaching_at(3.0, "a2", "p1", "fast", 2),
        reaching_at(4.0, "b0", "p1", "slow", 0), reaching_at(4.0, "b1", "p1", "slow", 1),
        run_rows("b2", "p1", "slow", 2, [1.0], [math.nan], status="error", peak=3000.0),
    )
    entries = scoring.summary(scoring.run_table(results, TARGETS)).set_index("solver_label")
    assert entries.loc["fast", "time_median"] == 2.0
    assert entries.loc["fast", "time_low"] == pytest.approx(1.4)
    assert entries.loc["fast", "time_high"] == pytest.approx(2.6)
    assert entries.loc["fast", "oracle_median"] == 20.0
    assert entries.loc["slow", "time_median"] == 4.0
    assert math.isinf(entries.loc["slow", "time_high"])
    assert entries.loc["fast", "time_ratio"] == 1.0 and entries.loc["slow", "time_ratio"] == 2.0
    assert (entries.loc["slow", "n_runs"], entries.loc["slow", "n_reached"]) == (3, 2)
    assert (entries.loc["slow", "n_ok"], entries.loc["slow", "n_error"]) == (2, 1)
    assert entries.loc["slow", "peak_memory_median"] == 1000.0
    assert entries.loc["fast", "rank"] == 1 and entries.loc["slow", "rank"] == 2


def test_rank_breaks_ties_by_final_metric_when_nobody_reaches():
    results = table(run_rows("a", "p1", "worse", 0, [1.0, 2.0], [1.0, 0.5]),
                    run_rows("b", "p1", "better", 0, [1.0, 2.0], [1.0, 0.2]))
    entries = scoring.summary(scoring.run_table(results, TARGETS)).set_index("solver_label")
    assert entries.loc["better", "rank"] == 1 and entries.loc["worse", "rank"] == 2
    assert math.isinf(entries.loc["better", "time_ratio"])  # nobody reached: no finite ratio


# -- across problems: profiles and scores -------------------------------------------------------
def three_solvers_two_problems(device=CPU):
    """Medians: p1: A 1, B 2, C never; p2: A 3, B 1, C 5 -> ratios A (1, 3), B (2, 1), C (inf, 5)."""
    tag = device[0]
    return table(reaching_at(1.0, f"{tag}a1", "p1", "A", 0, device=device),
                 reaching_at(2.0, f"{tag}b1", "p1", "B", 0, device=device),
                 run_rows(f"{tag}c1", "p1", "C", 0, [1.0, 10.0], [1.0, 0.5], device=device),
                 reaching_at(3.0, f"{tag}a2", "p2", "A", 0, device=device),
                 reaching_at(1.0, f"{tag}b2", "p2", "B", 0, device=device),
                 reaching_at(5.0, f"{tag}c2", "p2", "C", 0, device=device))


def test_ratio_matrix_and_performance_profile():
    entries = scoring.summary(scoring.run_table(three_solvers_two_problems(), TARGETS))
    device = scoring.device_class(*CPU)
    matrix = scoring.ratio_matrix(entries, device)
    assert matrix.loc["p1", "A"] == 1.0 and matrix.loc["p2", "A"] == 3.0
    assert matrix.loc["p1", "B"] == 2.0 and matrix.loc["p2", "B"] == 1.0
    assert math.isinf(matrix.loc["p1", "C"]) and matrix.loc["p2", "C"] == 5.0
    profiles = scoring.performance_profiles(entries, taus=[1.0, 1.5, 2.0, 2.999, 3.0, 4.0])
    rho = profiles.set_index(["solver_label", "tau"])["rho"]
    assert [rho["A", t] for t in (1.0, 1.5, 2.999, 3.0, 4.0)] == [0.5, 0.5, 0.5, 1.0, 1.0]
    assert [rho["B", t] for t in (1.0, 1.5, 2.0, 4.0)] == [0.5, 0.5, 1.0, 1.0]
    assert [rho["C", t] for t in (1.0, 4.0)] == [0.0, 0.0]


def test_scores_are_the_profile_integral():
    entries = scoring.summary(scoring.run_table(three_solvers_two_problems(), TARGETS))
    table_ = scoring.scores(entries).set_index("solver_label")
    # B = mean(4 - r, 0) / 3 = ((4 - 2) + (4 - 1)) / 2 / 3 = 5/6; A = (3 + 1) / 6 = 2/3; C = 0.
    assert table_.loc["B", "score"] == pytest.approx(5 / 6)
    assert table_.loc["A", "score"] == pytest.approx(2 / 3)
    assert table_.loc["C", "score"] == 0.0
    assert list(table_.index) == ["B", "A", "C"]  # best score first
    assert (table_.loc["C", "n_solved"], table_.loc["C", "n_within"], table_.loc["A", "n_best"]) == (1, 0, 1)
    # the closed form equals a fine numerical integral of the profile over [1, 4]
    taus = np.linspace(1.0, 4.0, 30001)
    profile = scoring.performance_profiles(entries, taus=taus)
    for solver, curve in profile.groupby("solver_label"):
        numeric = np.trapezoid(curve["rho"], curve["tau"]) / 3.0
        assert numeric == pytest.approx(table_.loc[solver, "score"], abs=1e-3)
    assert scoring.profile_score([1.0, 1.0]) == 1.0
    assert scoring.profile_score([math.inf]) == 0.0


def test_oracle_axis_has_its_own_ratios():
    # B is slower in seconds but uses half the oracle calls per second
    results = table(reaching_at(1.0, "a", "p1", "A", 0, oracle_per_second=100.0),
                    reaching_at(2.0, "b", "p1", "B", 0, oracle_per_second=10.0))
    entries = scoring.summary(scoring.run_table(results, TARGETS)).set_index("solver_label")
    assert (entries.loc["A", "time_ratio"], entries.loc["B", "time_ratio"]) == (1.0, 2.0)
    assert (entries.loc["A", "oracle_ratio"], entries.loc["B", "oracle_ratio"]) == (5.0, 1.0)
    oracle = scoring.score(results, TARGETS, axis="oracle").set_index("solver_label")["score"]
    assert oracle["B"] == 1.0 and oracle["A"] == 0.0  # ratio 5: beyond tau_max = 4
    with pytest.raises(UserError, match="unknown axis"):
        scoring.scores(entries.reset_index(), axis="memory")


def test_only_the_same_device_class_is_compared():
    cpu = three_solvers_two_problems(CPU)
    gpu = table(reaching_at(0.1, "g1", "p1", "A", 0, device=GPU), reaching_at(0.5, "g2", "p1", "D", 0, device=GPU))
    entries = scoring.summary(scoring.run_table(pd.concat([cpu, gpu]), TARGETS))
    assert set(entries["device_class"]) == {"cpu: Test CPU", "cuda: Test GPU"}
    cpu_entries = entries[entries["device_class"] == "cpu: Test CPU"].set_index(["problem_label", "solver_label"])
    # A's 0.1 s on the GPU does not change any CPU ratio
    assert cpu_entries.loc[("p1", "B"), "time_ratio"] == 2.0
    result = scoring.scores(entries).set_index(["device_class", "solver_label"])["score"]
    assert result["cuda: Test GPU", "A"] == 1.0
    assert result["cuda: Test GPU", "D"] == 0.0  # ratio 5: beyond tau_max = 4
    assert ("cpu: Test CPU", "D") not in result.index
    assert result["cpu: Test CPU", "B"] == pytest.approx(5 / 6)
    # two models of GPU are two classes
    other = gpu.assign(device_name="Other GPU", run_id=gpu["run_id"] + "x")
    labelled = scoring.label_rows(pd.concat([gpu, other]))
    assert labelled["device_class"].nunique() == 2


def test_a_solver_missing_on_a_problem_counts_as_failing_it():
    results = table(reaching_at(1.0, "a1", "p1", "A", 0), reaching_at(1.0, "a2", "p2", "A", 0),
                    reaching_at(1.0, "b1", "p1", "B", 0))
    result = scoring.score(results, TARGETS).set_index("solver_label")
    assert result.loc["A", "score"] == 1.0
    assert result.loc["B", "score"] == 0.5 and result.loc["B", "n_problems"] == 2


def test_labels_of_several_settings_of_a_solver():
    results = table(reaching_at(1.0, "a", "p1", "soba", 0, solver_params='{"step_inner": 0.01, "x": 1}'),
                    reaching_at(2.0, "b", "p1", "soba", 0, solver_params='{"step_inner": 0.1, "x": 1}'),
                    reaching_at(2.0, "c", "p2", "soba", 0, solver_params='{"step_inner": 0.5, "x": 1}'))
    labels = set(scoring.label_rows(results)["solver_label"])
    assert labels == {"soba[step_inner=0.01]", "soba[step_inner=0.1]", "soba[step_inner=0.5]"}
    # one setting per problem (tuned per problem): one entry across problems
    tuned = results[results["run_id"] != "b"]
    assert set(scoring.label_rows(tuned)["solver_label"]) == {"soba"}


def test_eager_and_fast_rows_of_one_solver_are_two_entries():
    eager = pd.DataFrame(reaching_at(1.0, "a", "p1", "soba", 0))
    fast = pd.DataFrame(reaching_at(0.5, "b", "p1", "soba", 0)).assign(path="fast")
    labelled = scoring.label_rows(pd.concat([eager, fast], ignore_index=True))
    assert dict(zip(labelled["run_id"], labelled["solver_label"])) == {"a": "soba[path=eager]",
                                                                         "b": "soba[path=fast]"}
    runs = scoring.run_table(pd.concat([eager, fast], ignore_index=True), targets=TARGETS)
    assert sorted(runs["path"]) == ["eager", "fast"]


def test_summary_names_each_entry_path_and_a_mixed_ranking():
    eager = pd.DataFrame(reaching_at(1.0, "a", "p1", "soba", 0) + reaching_at(2.0, "b", "p1", "saba", 0))
    entries = scoring.summary(scoring.run_table(eager, targets=TARGETS))
    assert list(entries["path"]) == ["eager", "eager"] and scoring.mixed_paths(entries) == {}
    fast = pd.DataFrame(reaching_at(0.5, "c", "p1", "fsla", 0)).assign(path="fast")
    entries = scoring.summary(scoring.run_table(pd.concat([eager, fast], ignore_index=True), targets=TARGETS))
    assert dict(zip(entries["solver_label"], entries["path"])) == {"fsla": "fast", "soba": "eager", "saba": "eager"}
    assert scoring.mixed_paths(entries) == {"eager": ["soba", "saba"], "fast": ["fsla"]}  # in rank order


def test_show_uses_the_same_time_to_target():
    results = table(reaching_at(1.0, "a0", "quadratic", "A", 0), reaching_at(3.0, "a1", "quadratic", "A", 1))
    results = results.rename(columns={"objective_value": "objective_relative_suboptimality"})
    target = scoring.problem_target("quadratic").value
    results["objective_relative_suboptimality"] *= target / 0.1  # reaching the documented target at t_reach
    runs = scoring.run_table(results, strict=False)
    line = scoring.summary(runs).iloc[0]
    assert line["time_median"] == scoring.median(runs["time_to_target"]) == 2.0
    assert line["n_reached"] == 2 and line["n_runs"] == 2 and line["final_step_median"] == 2


def test_summary_names_why_a_solver_failed():
    failed = run_rows("b0", "quadratic", "B", 0, [0.0], [1.0], status="error")
    failed[0]["message"] = "DataError: could not download x.gz (" + "mirror; " * 60 + ") place it at /cache/x.gz"
    results = table(reaching_at(1.0, "a0", "quadratic", "A", 0), failed)
    notes = failure_notes(scoring.summary(scoring.run_table(results, strict=False)))
    assert len(notes) == 1 and notes[0].startswith("quadratic B (error): DataError: could not download")
    assert notes[0].endswith("place it at /cache/x.gz") and len(notes[0]) < 360  # head and remedy kept


def test_the_same_run_on_two_machines_is_two_runs():
    one = table(reaching_at(1.0, "same-id", "p1", "A", 0, device=("cpu", "CPU model 1")))
    two = table(reaching_at(3.0, "same-id", "p1", "A", 0, device=("cpu", "CPU model 2")))
    runs = scoring.run_table(pd.concat([one, two]), TARGETS)
    assert sorted(runs["time_to_target"]) == [1.0, 3.0]
    assert list(runs["run_id"]) == ["same-id", "same-id"] and runs["device_class"].nunique() == 2


def test_unknown_memory_of_a_failed_run_is_not_a_figure():
    """A killed run's peak_memory_bytes is -1 (unknown): it must not pull the median down."""
    import pandas as pd

    from benchopt_bilevel.scoring import run_table

    rows = []
    for seed, memory, status in ((0, 1000, "ok"), (1, 3000, "ok"), (2, -1, "timeout")):
        rows.append({"problem": "quadratic", "solver": "soba", "seed": seed, "run_id": f"r{seed}",
                     "step": 0, "time": 0.0, "oracle_total": 0.0, "peak_memory_bytes": memory,
                     "status": status, "final": True, "objective_relative_suboptimality": 1.0})
    runs = run_table(pd.DataFrame(rows), strict=False)
    memory = dict(zip(runs["seed"], runs["peak_memory_bytes"]))
    assert memory[0] == 1000 and memory[1] == 3000
    assert pd.isna(memory[2])
