"""Regularization selection on real data (problems/logreg.py): hand-derived oracles against
torch.func, the exact inner solve and implicit hypergradient against finite differences of h,
a SOBA run that lowers the validation loss, and a run through the command line."""
from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from benchopt_bilevel import rng
from benchopt_bilevel.cli import main
from benchopt_bilevel.errors import UserError
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import get_solver
from benchopt_bilevel.runner import Cell, validate

from conftest import assert_hypergradient_matches_finite_differences, assert_oracles_match_autograd, build_problem

SMALL = dict(n_train_max=640, batch_size=32)


def build(dtype=torch.float64, **params):
    return build_problem("logreg", dtype, **{**SMALL, **params})


@pytest.fixture(scope="module")
def problem():
    return build()


def _point(problem, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = -2.0 + torch.randn(problem.dim_x, generator=g, dtype=torch.float64)
    y = torch.randn(problem.dim_y, generator=g, dtype=torch.float64)
    v = torch.randn(problem.dim_y, generator=g, dtype=torch.float64)
    u = torch.randn(problem.dim_x, generator=g, dtype=torch.float64)
    return x, y, v, u


def test_shapes_and_split(problem):
    # 640 rows: 128 validation rows (4 blocks of 32), 512 training rows (16 blocks).
    assert (problem.dim_x, problem.dim_y) == (22, 22)
    assert (problem.n_inner_batches, problem.n_outer_batches) == (16, 4)
    assert problem.train.shape == (16, 32, 22) and problem.val.shape == (4, 32, 22)
    other = build(seed=1)
    assert not torch.equal(problem.train, other.train), "the seed must fix the split"
    assert torch.equal(problem.train, build().train)


def test_validation_on_the_test_file():
    # The JAX benchmark's protocol: every (kept) training row in g, the whole test file in f.
    problem = build(validation="test")
    assert problem.train.shape == (20, 32, 22)  # 640 rows, none held out
    assert problem.val.shape == (91_701 // 32, 32, 22)
    metrics = problem.evaluate(torch.full((22,), -2.0, dtype=torch.float64), problem.y_star(torch.full((22,), -2.0, dtype=torch.float64)))
    assert metrics["val_loss"] == pytest.approx(metrics["test_loss"], rel=1e-3)  # same rows, fewer than a block dropped


def test_a_zero_model_is_wrong_on_every_row(problem):
    metrics = problem.evaluate(torch.zeros(22, dtype=torch.float64), torch.zeros(22, dtype=torch.float64))
    assert metrics["val_accuracy"] == metrics["test_accuracy"] == 0.0


@pytest.mark.parametrize("batch", [torch.tensor(3), None], ids=["block", "full"])
def test_hand_oracles_match_autograd(problem, batch):
    assert_oracles_match_autograd(problem, *_point(problem), batch)


@pytest.mark.parametrize("batch", [torch.tensor(3), None], ids=["block", "full"])
def test_compiled_form_of_the_oracles_equals_the_eager_one(problem, batch, monkeypatch):
    # Compiled, the weighted row sums are a broadcast and a sum (one fused reduction) instead of
    # a matrix product, and a block is gathered by index_select: the same numbers up to round-off.
    x, y, v, _ = _point(problem)

    def oracles():
        return (problem.grad_inner_y(x, y, batch), *problem.grad_outer(x, y, batch),
                problem.hvp_inner(x, y, v, batch), *problem.grad_hvp_cross_inner(x, y, v, batch))

    eager = oracles()
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    compiled = oracles()
    for a, b in zip(compiled, eager):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    assert not torch.equal(compiled[0], problem.grad_inner_y(x, y + 1e-3, batch))  # not vacuous


def test_exact_inner_solution_is_stationary(problem):
    x = _point(problem)[0]
    y_star = problem.y_star(x)
    grad = Oracles(problem).grad_inner_y(x, y_star, None)
    assert float(torch.linalg.vector_norm(grad)) < 1e-9


def test_implicit_hypergradient_matches_finite_differences(problem):
    x = _point(problem, seed=2)[0]
    assert_hypergradient_matches_finite_differences(problem, x)


def test_evaluate_reports_every_metric(problem):
    x = _point(problem)[0]
    metrics = problem.evaluate(x, problem.y_star(x))
    for key in ("h", "grad_norm2", "relative_grad_norm2", "inner_distance", "val_loss",
                "val_accuracy", "test_loss", "test_accuracy", "baseline_accuracy"):
        assert key in metrics and metrics[key] == metrics[key], key  # present and not NaN
    assert metrics["inner_distance"] < 1e-20
    # At y = y*(x), the validation loss at the solver's y is h(x).
    assert metrics["val_loss"] == pytest.approx(metrics["h"])
    assert {problem.target_metric, problem.value_metric, problem.divergence_metric} <= set(metrics)
    assert 0.85 < metrics["baseline_accuracy"] < 0.95  # ijcnn1 is ~90% negative


def test_tuned_penalty_beats_the_majority_baseline():
    # Full ijcnn1: small penalties give a model above the majority-class baseline on test.
    problem = build(n_train_max=0, batch_size=64)
    x = torch.full((problem.dim_x,), -10.0, dtype=torch.float64)
    metrics = problem.evaluate(x, problem.y_star(x))
    assert metrics["test_accuracy"] > metrics["baseline_accuracy"] + 0.01


@pytest.fixture(scope="module")
def with_intercept():
    return build(standardize=True, intercept=True)


def test_standardized_features_and_intercept(with_intercept):
    problem = with_intercept
    assert problem.dim_x == problem.dim_y == 23  # 22 features and the constant one
    signed = problem.train64.abs()  # |b_i a_i| = |a_i|: the constant column is all ones
    torch.testing.assert_close(signed[:, -1], torch.ones(len(signed), dtype=torch.float64))
    # Standardized by the training part's own statistics (before the validation split: close).
    features = problem.train64[:, :-1] * problem.train64[:, -1:]  # undo the signs: b_i² = 1
    assert float(features.mean(0).abs().max()) < 0.2


def test_intercept_variant_oracles_and_hypergradient(with_intercept):
    problem = with_intercept
    x, y, v, u = _point(problem)
    for batch in (None, torch.tensor(1)):
        assert_oracles_match_autograd(problem, x, y, v, u, batch)
    assert_hypergradient_matches_finite_differences(problem, x)


def test_default_benchmark_start_beats_the_majority_baseline():
    # The default benchmark's logreg (standardized, intercept, penalties e^-4), full ijcnn1: the
    # exact model at the starting penalties is above the baseline, the literature's start is not.
    informative = build(n_train_max=0, batch_size=64, standardize=True, intercept=True, x_init=-4.0)
    x = informative.x0().to(torch.float64)
    metrics = informative.evaluate(x, informative.y_star(x))
    assert metrics["test_accuracy"] > metrics["baseline_accuracy"] + 0.005
    literature = build(n_train_max=0, batch_size=64)
    x = literature.x0().to(torch.float64)
    metrics = literature.evaluate(x, literature.y_star(x))
    assert metrics["test_accuracy"] <= metrics["baseline_accuracy"] + 1e-3


def test_soba_lowers_validation_loss():
    problem = build(dtype=torch.float32, n_train_max=2048, batch_size=64)
    # Constant steps: the test is about the problem's oracles, and SOBA's default steps (decaying as
    # in its theorem) barely move h on ijcnn1 in 1500 steps (0.6625 -> 0.6617).
    solver = get_solver("soba")(decay_inner=0.0, decay_outer=0.0)
    oracles = Oracles(problem)
    state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0, problem.device))
    before = problem.evaluate(*solver.output(state))
    with torch.no_grad():
        for _ in range(1500):
            state = solver.step(oracles, state)
    after = problem.evaluate(*solver.output(state))
    assert after["h"] < before["h"] - 0.05
    assert after["val_loss"] < before["val_loss"] - 0.05


def test_bad_parameters_fail_before_running():
    with pytest.raises(UserError, match="unknown dataset"):
        validate(Cell("logreg", "soba", {"dataset": "ijcnn"}, {}, seed=0))
    with pytest.raises(UserError, match="val_fraction"):
        validate(Cell("logreg", "soba", {"val_fraction": 1.5}, {}, seed=0))
    with pytest.raises(UserError, match="validation must be one of split, test"):
        validate(Cell("logreg", "soba", {"validation": "val"}, {}, seed=0))
    with pytest.raises(ValueError, match="binary"):
        build(dataset="mnist_5k")


def test_cli_run(tmp_path):
    result = CliRunner().invoke(main, ["run", "-p", "logreg[n_train_max=640,batch_size=32]", "-s", "soba",
                                       "--max-time", "1", "--executor", "inline", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    files = list(tmp_path.glob("logreg-soba-*.parquet"))
    assert len(files) == 1
    import pandas as pd
    table = pd.read_parquet(files[0])
    assert (table["status"] == "ok").all()
    assert table["objective_h"].iloc[-1] < table["objective_h"].iloc[0]


def test_a_singular_hessian_gives_nan_metrics_not_an_exception():
    """Where y*(x) is not defined (a diverging run's x), the exact solution is NaN, which the
    runner reads as a diverged run, not an error."""
    import torch

    from problems.logreg import cholesky_or_nan

    assert torch.isnan(cholesky_or_nan(torch.zeros(3, 3, dtype=torch.float64))).all()
    spd = torch.eye(3, dtype=torch.float64) * 4.0
    assert torch.equal(cholesky_or_nan(spd), torch.linalg.cholesky(spd))
