"""Which metric is which: every problem names its target, benchopt value and divergence metrics
among the keys of its `evaluate`, and the engine reads those names, never a default one."""
from __future__ import annotations

import math

import pytest

from benchopt_bilevel import scoring
from benchopt_bilevel.errors import UserError
from benchopt_bilevel.problem import Problem
from benchopt_bilevel.registry import problems
from benchopt_bilevel.runner import Cell, RunConfig, run_cell

from conftest import WELL_CONDITIONED, build_problem


def test_the_base_class_names_no_metric():
    # A problem that forgets to name its metrics fails at once instead of reading a missing column.
    for name in ("target_metric", "value_metric"):
        assert not hasattr(Problem, name), name


@pytest.mark.parametrize("name", sorted(problems()))
def test_every_problem_names_its_metrics(name):
    cls = problems()[name]
    assert isinstance(cls.target_metric, str) and cls.target_metric, name
    assert isinstance(cls.value_metric, str) and cls.value_metric, name
    assert cls.divergence_metric is None or isinstance(cls.divergence_metric, str), name


@pytest.mark.parametrize("name", ["quadratic", "quadratic_box"])
def test_quadratic_metrics_are_keys_of_evaluate_and_h_is_exact(name):
    problem = build_problem(name, **WELL_CONDITIONED)
    x_star = problem.x_star
    metrics = problem.evaluate(x_star, problem.y_star(x_star))
    assert {problem.target_metric, problem.value_metric, problem.divergence_metric} <= set(metrics)
    assert "value" not in metrics  # the exact upper-level value is `h`
    assert metrics["h"] == pytest.approx(float(problem.h_star), rel=1e-12)
    assert problem.evaluate(problem.x0(), problem.y0())["h"] == pytest.approx(float(problem.h_x0), rel=1e-12)


def test_benchopt_objective_value_is_the_problem_value_metric():
    table = run_cell(Cell("quadratic", "soba", dict(WELL_CONDITIONED), {}, seed=0),
                     RunConfig(max_steps=20, max_time=100, dtype="float64"))
    assert len(table) > 1
    assert table["objective_value"].tolist() == table["objective_h"].tolist()
    assert table["objective_h"].iloc[-1] < table["objective_h"].iloc[0]


def test_an_unregistered_problem_is_scored_on_benchopt_objective_value():
    # Its metric names are unknown here; benchopt's column is in every result table.
    assert scoring.problem_target("p1", {"p1": ("loss", 0.5)}) == scoring.Target("loss", 0.5)
    assert scoring.problem_target("p1", {"p1": 0.5}).column == "objective_value"
    with pytest.raises(UserError, match="no target for problem 'p1'"):
        scoring.problem_target("p1")
    shown = scoring.problem_target("p1", strict=False)  # `show` of a foreign table: never reached
    assert shown.column == "objective_value" and math.isnan(shown.value)


def test_a_numeric_target_override_keeps_the_problem_target_metric():
    assert scoring.problem_target("quadratic", {"quadratic": 1e-4}) == scoring.Target("relative_suboptimality", 1e-4)

