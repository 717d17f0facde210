"""Multinomial regularization selection (problems/logreg_multiclass.py) on scikit-learn's digits
(offline; covtype is the literature's set and needs a download): hand oracles against torch.func,
the Newton-CG inner solve, the implicit hypergradient against finite differences of h, and a
SOBA run that lowers h."""
from __future__ import annotations

import pytest
import torch

from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.runner import Cell, RunConfig, run_cell

from conftest import assert_hypergradient_matches_finite_differences, assert_oracles_match_autograd, build_problem

pytest.importorskip("sklearn")
SMALL = dict(dataset="digits", n_train_max=640, batch_size=32)


def build(dtype=torch.float64, **params):
    return build_problem("logreg_multiclass", dtype, **{**SMALL, **params})


@pytest.fixture(scope="module")
def problem():
    return build()


def _point(problem, seed=1):
    g = torch.Generator().manual_seed(seed)
    draw = lambda n, scale=1.0: scale * torch.randn(n, generator=g, dtype=torch.float64)  # noqa: E731
    return -3.0 + draw(problem.dim_x), draw(problem.dim_y, 0.1), draw(problem.dim_y), draw(problem.dim_x)


def test_shapes(problem):
    # 64 pixel features + the intercept, 10 classes; 640 rows: 128 validation, 512 training.
    assert (problem.dim_x, problem.dim_y) == (10, 65 * 10)
    assert (problem.n_inner_batches, problem.n_outer_batches) == (16, 4)


@pytest.mark.parametrize("batch", [torch.tensor(3), None], ids=["block", "full"])
def test_hand_oracles_match_autograd(problem, batch):
    assert_oracles_match_autograd(problem, *_point(problem), batch)


def test_exact_inner_solution_is_stationary(problem):
    x = _point(problem)[0]
    grad = Oracles(problem).grad_inner_y(x, problem.y_star(x), None)
    assert float(torch.linalg.vector_norm(grad)) < 1e-9


def test_implicit_hypergradient_matches_finite_differences(problem):
    x = _point(problem, seed=2)[0]
    assert_hypergradient_matches_finite_differences(problem, x)


def test_evaluate_and_accuracy_above_baseline(problem):
    x = _point(problem)[0]
    metrics = problem.evaluate(x, problem.y_star(x))
    assert metrics["inner_distance"] < 1e-18
    assert metrics["val_loss"] == pytest.approx(metrics["h"])  # at y = y*(x)
    assert {problem.target_metric, problem.value_metric, problem.divergence_metric} <= set(metrics)
    assert metrics["test_accuracy"] > 0.85 > 0.2 > metrics["baseline_accuracy"]  # 10 balanced digits


def test_soba_lowers_h():
    cell = Cell("logreg_multiclass", "soba", {**SMALL}, {"step_inner": 0.5}, seed=0)
    table = run_cell(cell, RunConfig(max_steps=400, n_evals=3, dtype="float64"))
    first, last = table.iloc[0], table.iloc[-1]
    assert last["status"] == "ok", last["message"]
    assert last["objective_h"] < first["objective_h"] - 1e-3
    assert last["objective_test_accuracy"] > 0.8
