"""The synthetic binary data set (datasets/synthetic_binary.py): covtype's shape, drawn offline,
identical across loads, and usable by the logistic-regression problem."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchopt_bilevel.data import get_dataset
from benchopt_bilevel.fixtures import build_problem

COVTYPE_ROWS, COVTYPE_FEATURES = 581_012, 54


@pytest.fixture(scope="module")
def loaded():
    return get_dataset("synthetic_binary").load()


def test_covtype_shape_without_files(loaded):
    info = get_dataset("synthetic_binary")
    assert info.files == () and info.available()  # nothing to download
    assert len(loaded.X_train) + len(loaded.X_test) == COVTYPE_ROWS
    assert loaded.X_train.shape[1] == loaded.X_test.shape[1] == COVTYPE_FEATURES
    assert loaded.X_train.dtype == np.float32 and loaded.y_train.dtype == np.int64
    assert set(np.unique(loaded.y_train)) == {0, 1} and loaded.n_classes == 2
    assert abs(len(loaded.X_test) / COVTYPE_ROWS - 0.2) < 1e-3


def test_two_loads_are_identical(loaded):
    again = get_dataset("synthetic_binary").load()
    for name in ("X_train", "y_train", "X_test", "y_test"):
        assert np.array_equal(getattr(loaded, name), getattr(again, name)), name


def test_split_seed_moves_rows_but_not_content(loaded):
    other = get_dataset("synthetic_binary").load(seed=1)
    assert not np.array_equal(loaded.y_test, other.y_test)
    both = lambda d: np.sort(np.concatenate([d.y_train, d.y_test]))  # noqa: E731
    assert np.array_equal(both(loaded), both(other))


def test_labels_balanced_and_learnable(loaded):
    assert 0.45 < loaded.y_train.mean() < 0.55
    # The planted teacher's features carry the label: a least-squares fit on the training rows
    # beats the majority class on the test rows by far (10% of the labels are flipped, so at best ~0.9).
    X = np.c_[loaded.X_train, np.ones(len(loaded.X_train))]
    w = np.linalg.lstsq(X, 2.0 * loaded.y_train - 1, rcond=None)[0]
    predicted = (np.c_[loaded.X_test, np.ones(len(loaded.X_test))] @ w > 0).astype(int)
    accuracy = (predicted == loaded.y_test).mean()
    assert 0.75 < accuracy <= 0.92, accuracy


def test_logreg_builds_on_it():
    problem = build_problem("logreg", torch.float64, dataset="synthetic_binary", n_train_max=640)
    assert problem.dim_x == problem.dim_y == COVTYPE_FEATURES
    assert problem.train.shape == (8, 64, COVTYPE_FEATURES)  # 640 rows: 128 validation, 512 train
    value = problem.outer(problem.x0(), problem.y0(), None)
    assert torch.isfinite(value)
