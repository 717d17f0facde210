"""Data hyper-cleaning (problems/hypercleaning.py): corruption, hand-derived oracles against
torch.func, the exact hypergradient against finite differences of h, the detection F1, a SOBA
run that cleans, and a run through the command line."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from benchopt_bilevel import rng
from benchopt_bilevel.cli import main
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import get_solver

from conftest import assert_oracles_match_autograd, build_problem

SMALL = dict(n_train_max=640, batch_size=32)


def build(dtype=torch.float64, **params):
    return build_problem("hypercleaning", dtype, **{**SMALL, **params})


@pytest.fixture(scope="module")
def mnist():
    return build()


@pytest.fixture(scope="module")
def binary():
    # ijcnn1, two classes: 44 inner variables, small enough for exact (dense Newton) solves.
    return build(dataset="ijcnn1", n_train_max=320, ridge=1e-2)


def test_corruption(mnist):
    # 512 training rows, half of them given another class; the seed decides which.
    assert mnist.dim_x == 512 and mnist.dim_y == 784 * 10
    assert int(mnist.corrupted.sum()) == 256
    clean = build(corruption=0.0)
    assert torch.equal(clean.train, mnist.train)  # same rows, only labels change
    changed = (clean.train_labels != mnist.train_labels).any(-1).reshape(-1)
    assert torch.equal(changed, mnist.corrupted), "every corrupted row has a wrong label"
    assert not torch.equal(build(seed=1).corrupted, mnist.corrupted)


@pytest.mark.parametrize("batch", [torch.tensor(1), None], ids=["block", "full"])
@pytest.mark.parametrize("which", ["mnist", "binary"])
def test_hand_oracles_match_autograd(which, batch, request):
    problem = request.getfixturevalue(which)
    g = torch.Generator().manual_seed(1)
    x, u = (torch.randn(problem.dim_x, generator=g, dtype=torch.float64) for _ in range(2))
    y, v = (0.1 * torch.randn(problem.dim_y, generator=g, dtype=torch.float64) for _ in range(2))
    assert_oracles_match_autograd(problem, x, y, v, u, batch)


def test_exact_hypergradient_matches_finite_differences(binary):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(binary.dim_x, generator=g, dtype=torch.float64)
    exact = binary.exact_hypergradient(x)
    eps = 1e-4
    for _ in range(3):  # directional derivatives along random directions
        d = torch.randn(binary.dim_x, generator=g, dtype=torch.float64)
        fd = (binary.exact_value(x + eps * d) - binary.exact_value(x - eps * d)) / (2 * eps)
        assert float(exact @ d) == pytest.approx(float(fd), rel=1e-5, abs=1e-10)
    assert float(torch.linalg.vector_norm(exact)) > 1e-6


def test_detection_f1(mnist):
    y = torch.zeros(mnist.dim_y, dtype=torch.float64)
    perfect = mnist.evaluate(torch.where(mnist.corrupted, -1.0, 1.0).double(), y)
    assert perfect["f1"] == 1.0 and perfect["precision"] == 1.0 and perfect["recall"] == 1.0
    assert mnist.evaluate(torch.zeros(mnist.dim_x, dtype=torch.float64), y)["f1"] == 0.0
    everything = mnist.evaluate(-torch.ones(mnist.dim_x, dtype=torch.float64), y)
    assert everything["recall"] == 1.0 and everything["precision"] == pytest.approx(0.5)
    assert everything["f1"] == pytest.approx(2 / 3)
    assert everything["test_error"] == pytest.approx(1 - everything["test_accuracy"])


def test_soba_cleans():
    problem = build(dtype=torch.float32, n_train_max=1280, batch_size=64)
    solver = get_solver("soba")()
    oracles = Oracles(problem)
    state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0, problem.device))
    with torch.no_grad():
        for _ in range(300):
            state = solver.step(oracles, state)
    metrics = problem.evaluate(*solver.output(state))
    assert metrics["val_loss"] < 2.302585 - 0.3  # below log(10), the loss at y = 0
    assert metrics["test_accuracy"] > 0.6
    assert metrics["f1"] > 0.5  # half the rows are corrupted: chance F1 of flagging is ~0.5 · recall


def test_cli_run(tmp_path):
    result = CliRunner().invoke(main, ["run", "-p", "hypercleaning[n_train_max=640,batch_size=32]",
                                       "-s", "soba", "--max-time", "1", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    files = list(tmp_path.glob("hypercleaning-soba-*.parquet"))
    assert len(files) == 1
    table = pd.read_parquet(files[0])
    assert (table["status"] == "ok").all()
    assert table["objective_val_loss"].iloc[-1] < table["objective_val_loss"].iloc[0]


def test_standardized_features():
    # digits (raw pixel counts 0..16), standardized by the training rows: centred, unit scale.
    pytest.importorskip("sklearn")
    problem = build(dataset="digits", standardize=True, n_train_max=640)
    features = problem.X_train64
    assert float(features.mean(0).abs().max()) < 1e-10
    deviation = features.std(0)
    assert float((deviation[deviation > 0] - 1).abs().max()) < 1e-10
    assert float(build(dataset="digits", n_train_max=640).X_train64.max()) == 16.0
