"""Shared pieces of the logistic problems (logreg, hypercleaning): data splits and blocks.

A real classification set is loaded from the dataset layer, its training rows shuffled once with
the problem's generator, optionally cut to `n_train_max`, split into train/validation, and each
part cut into fixed mini-batch blocks (n_batches, batch_size, ...). Rows beyond the last full
block are dropped (fewer than batch_size of them), so that the full-batch objective is exactly
the mean over the blocks. The test set is kept whole, for reporting only.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import torch

from benchopt_bilevel.data.registry import get_dataset
from benchopt_bilevel import row_kernels
from benchopt_bilevel.linalg import is_mapped
from benchopt_bilevel.problem import Problem

Tensor = torch.Tensor


@dataclass
class Split:
    """float64 features and int64 labels of the train, validation and test parts."""

    X_train: Tensor
    y_train: Tensor
    X_val: Tensor
    y_val: Tensor
    X_test: Tensor
    y_test: Tensor
    n_classes: int


def check_split_params(params) -> None:
    """Checks shared by the problems built on `load_split` (a ValueError names the parameter);
    the dataset name is resolved here, so an unknown one fails before anything runs."""
    get_dataset(params.dataset)
    if params.batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {params.batch_size}")
    if not 0 < params.val_fraction < 1:
        raise ValueError(f"val_fraction must lie in (0, 1), got {params.val_fraction}")
    if params.n_train_max < 0:
        raise ValueError(f"n_train_max must be >= 0 (0 = all rows), got {params.n_train_max}")
    validation = getattr(params, "validation", "split")
    if validation not in VALIDATION_SOURCES:
        raise ValueError(f"validation must be one of {', '.join(VALIDATION_SOURCES)}, got {validation!r}")


VALIDATION_SOURCES = ("split", "test")


def load_split(dataset: str, val_fraction: float, n_train_max: int, batch_size: int,
               generator: torch.Generator, validation: str = "split") -> Split:
    """Shuffle the training rows (seeded), keep at most `n_train_max`, cut off a validation
    part, and drop the remainders so that train and validation are whole numbers of blocks.

    validation="test" takes the official test file as the validation set instead (all training
    rows train), the protocol of the existing JAX benchmark; test metrics are then validation
    metrics, and the report says so through the problem's parameters."""
    data = _load(dataset)
    X = torch.as_tensor(data.X_train, dtype=torch.float64).reshape(len(data.X_train), -1)
    y = torch.as_tensor(data.y_train, dtype=torch.int64)
    X_test = torch.as_tensor(data.X_test, dtype=torch.float64).reshape(len(data.X_test), -1)
    y_test = torch.as_tensor(data.y_test, dtype=torch.int64)
    order = torch.randperm(len(X), generator=generator)
    if n_train_max > 0:
        order = order[:n_train_max]
    if validation == "test":
        n_train = len(order) - len(order) % batch_size
        val = torch.randperm(len(X_test), generator=generator)
        val = val[:len(val) - len(val) % batch_size]
        if n_train < batch_size or len(val) < batch_size:
            raise ValueError(f"{dataset}: no full block of {batch_size} rows for train or validation")
        train = order[:n_train]
        return Split(X[train], y[train], X_test[val], y_test[val], X_test, y_test, int(data.n_classes))
    n_val = int(round(val_fraction * len(order)))
    n_val -= n_val % batch_size
    n_train = len(order) - n_val
    n_train -= n_train % batch_size
    if n_val < batch_size or n_train < batch_size:
        raise ValueError(f"{dataset}: {len(order)} rows give no full block of {batch_size} "
                         f"for train or validation (val_fraction={val_fraction})")
    val, train = order[:n_val], order[n_val:n_val + n_train]
    return Split(X[train], y[train], X[val], y[val], X_test, y_test, int(data.n_classes))


def prepare_features(split: Split, standardize: bool, intercept: bool) -> Split:
    """Optionally standardize (training mean and deviation; constant features are only centred)
    and append a constant feature."""
    parts = [split.X_train, split.X_val, split.X_test]
    if standardize:
        mean, std = split.X_train.mean(0), split.X_train.std(0)
        std = torch.where(std > 0, std, torch.ones_like(std))
        parts = [(X - mean) / std for X in parts]
    if intercept:
        parts = [torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], dim=1) for X in parts]
    X_train, X_val, X_test = parts
    return dataclasses.replace(split, X_train=X_train, X_val=X_val, X_test=X_test)


@lru_cache(maxsize=2)
def _load(dataset: str):
    """The dataset's arrays, parsed once per process (ijcnn1's text takes seconds); only read."""
    return get_dataset(dataset).load()


def blocks(t: Tensor, batch_size: int) -> Tensor:
    """(n, ...) -> (n // batch_size, batch_size, ...); n is a multiple of batch_size."""
    return t.reshape(len(t) // batch_size, batch_size, *t.shape[1:])


def rows(samples: Tensor, batch: Tensor | None, block) -> Tensor:
    """The rows of one block (`block` is Problem.block), or all rows for the full batch."""
    if batch is None:
        return samples.reshape(-1, *samples.shape[2:])
    return block(samples, batch)


def transposed_rows(samples: Tensor) -> Tensor:
    """All rows of `samples` (blocks) as one contiguous (d, n) matrix: the full batch's layout
    (`select_rows`)."""
    return samples.reshape(-1, samples.shape[-1]).T.contiguous()


class Rows(NamedTuple):
    """The rows a batch reads, (B, d); for the full batch also their transposed copy (d, n)."""
    matrix: Tensor
    transposed: Tensor | None = None


def select_rows(samples: Tensor, transposed: Tensor, batch: Tensor | None, block) -> Rows:
    """The rows of one block, or all rows (batch None) with their transposed copy."""
    return Rows(rows(samples, batch, block), transposed if batch is None else None)


def margins(rows_: Rows, y: Tensor) -> Tensor:
    """r_iᵀ y for every row. Full batch, a step is bound by reading the rows, and yᵀRᵀ on the
    transposed copy streams contiguous rows: ijcnn1's 40,000 x 22 (one thread, float32) 200 µs
    against 390 µs for R y, and batched by vmap over ESJ's 11 runs 300 µs against 520 µs (a
    compiled reduction over R's rows: 840 µs for this and the sum below)."""
    if rows_.transposed is not None:
        return y @ rows_.transposed
    return rows_.matrix @ y


def row_mean(rows_: Rows, weights: Tensor) -> Tensor:
    """1/B Σ_i weights_i r_i over the B rows. Full batch, Rᵀw on the transposed copy (180 µs
    against 210 µs for wᵀR; BOME's fast step 5.1 against 5.9 ms), but batched by vmap
    (`linalg.map_rows`: ESJ's runs) wᵀR, one (11, n) x (n, d) product: 420 µs against 670 µs
    for Rᵀ Wᵀ (ESJ's fast step 11.5 against 13.5 ms)."""
    if rows_.transposed is not None:
        mapped = is_mapped(weights)
        total = weights @ rows_.matrix if mapped else rows_.transposed @ weights
    else:
        total = weighted_row_sum(weights, rows_.matrix)
    return total / weights.shape[-1]


def sigmoid_row_mean(rows_: Rows, y: Tensor) -> Tensor:
    """`row_mean(rows_, sigmoid(−margins(rows_, y)))`: the data term of a logistic gradient. On the
    full batch on a CPU, one op (`row_kernels.sigmoid_row_mean`: one pass over the rows instead
    of two products and a sigmoid between; batched by vmap, ESJ's 11 runs on ijcnn1 take 606
    against 1,229 µs an inner step); elsewhere the three kernels."""
    if rows_.transposed is not None and rows_.matrix.device.type == "cpu" and y.dim() == 1:
        return row_kernels.sigmoid_row_mean(rows_.matrix, rows_.transposed, y.reshape(1, -1)).reshape(y.shape)
    return row_mean(rows_, torch.sigmoid(-margins(rows_, y)))


def weighted_row_sum(weights: Tensor, r: Tensor) -> Tensor:
    """Σ_i weights_i r_i over the rows r_i of a block (weights: (B,), r: (B, d)) -> (d,).

    Eager, a matrix product: one call. Compiled (a fast build, torch.compile), a broadcast and a
    sum instead: Inductor fuses it with the weights' computation into one reduction kernel, where
    a (1, B) @ (B, d) product is an extern BLAS call, with its own dispatch and output buffer,
    that costs more than its arithmetic at batch 64 (speed/profile_fast_step.py). The two differ
    by float round-off (the order of the sum). Eager it is written rᵀ w, not w r: batched over
    rows by vmap (`linalg.map_rows`), w r becomes a bmm over R expanded copies of the rows and
    rᵀ w one matrix product (ESJ on ijcnn1, measured when its full batch still came here: 67 ->
    28 ms a step eager; the full batch now takes `row_mean`'s own layout)."""
    if torch.compiler.is_compiling():
        return (weights[:, None] * r).sum(0)
    return r.T @ weights


def majority_accuracy(y_train: Tensor, y_test: Tensor, n_classes: int) -> float:
    """Test accuracy of always predicting the most frequent training class."""
    majority = torch.bincount(y_train, minlength=n_classes).argmax()
    return float((y_test == majority).double().mean())


class PenaltySelection(Problem):
    """Regularization selection: x holds log-penalties (all `params.x_init` at the start), and a
    subclass's `_solve(x)` returns the exact float64 {"x", "y_star", "v_star"} at x, cached for
    the last x (metrics ask for y*, h and ∇h at the same point)."""

    def _solve(self, x: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def x0(self) -> Tensor:
        return torch.full((self.dim_x,), self.params.x_init, dtype=self.dtype, device=self.device)

    def y_star(self, x: Tensor) -> Tensor:
        return self._solve(x)["y_star"]

    def v_star(self, x: Tensor) -> Tensor:
        return self._solve(x)["v_star"]

    def _initial_grad_norm2(self) -> float:
        """‖∇h(x0)‖², the scale of the target metric (computed once)."""
        if "grad_norm2_x0" not in vars(self):
            self.grad_norm2_x0 = float(torch.sum(self.hypergradient(self.x0().to(torch.float64)) ** 2))
        return self.grad_norm2_x0
