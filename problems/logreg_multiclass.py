"""Regularization selection, multinomial: one L2 penalty per class of a softmax regression.

    g(x, W) = 1/n Σ_i ℓ(a_iᵀW, c_i) + ½ Σ_k exp(x_k) ‖W_{:,k}‖²     (training loss + ridge per class)
    f(x, W) = 1/m Σ_j ℓ(a'_jᵀW, c'_j)                                  (validation loss)

ℓ is the multinomial logistic (cross-entropy) loss, W ∈ R^{d×K} (y = W flattened), x ∈ R^K the
log-penalties of the classes (default: covtype, 7 classes, standardized features,
64/16/20 train/validation/test). The dataset's training part is shuffled by the problem's seed
and split into train and validation (`val_fraction` = 0.2 of the 80%: 64/16); features are
standardized by the training rows' statistics and, with `intercept`, a constant feature is
appended (a bias per class, penalized like its class).

Oracles are hand-derived, O(batch · d · K), with Z = A W, P = softmax(Z), Y one-hot, e = e^x:
    ∇_W g = Aᵀ(P − Y) / B + W diag(e),          ∇_x g = ½ e ⊙ colsum(W ⊙ W),
    ∇²_WW g V = Aᵀ(P ⊙ U − P ⊙ rowsum(P ⊙ U)) / B + V diag(e),   U = A V,
    ∇²_xW g V = e ⊙ colsum(W ⊙ V),   ∇²_Wx g u = W diag(e ⊙ u),   ∇_x f = 0.

Exact quantities (float64, full batch, never timed): y*(x) by Newton-CG (Hessian-vector products
only, so covtype's 55 × 7 weights over 372k rows need no dense Hessian) to ‖∇_W g‖ ≤ 1e-10,
warm-started from the previous solve; v* = (∇²_WW g)⁻¹ ∇_W f by CG; ∇h(x) = −e ⊙ colsum(W* ⊙ v*).

Target: relative stationarity ‖∇h(x)‖² / ‖∇h(x0)‖² ≤ 1e-2, as for the binary problem (`logreg`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from benchopt_bilevel.linalg import conjugate_gradient
from benchopt_bilevel.problem import HyperparameterBox

from ._logistic import PenaltySelection, blocks, check_split_params, load_split, majority_accuracy, prepare_features, rows

Tensor = torch.Tensor
GRAD_TOLERANCE = 1e-10  # on ‖∇_W g‖ (float64) for y*(x)
NEWTON_MAX_ITERATIONS = 50
CG_MAX_ITERATIONS = 1000


@dataclass
class LogRegMulticlassParams:
    dataset: str = "covtype"  # a classification set of the dataset layer (covtype, digits, ...)
    batch_size: int = 64
    val_fraction: float = 0.2  # of the training part: 64/16/20 with covtype's 20% test split
    n_train_max: int = 0  # > 0: keep only this many training rows (small problems for tests)
    standardize: bool = True  # centre and scale features by the training rows' statistics
    intercept: bool = True  # a constant feature: one bias per class
    x_init: float = 0.0  # starting log-penalty of every class
    seed: int = 0  # seed of the split (the run's seed drives the solver)

    def __post_init__(self) -> None:
        check_split_params(self)


def _cross_entropy(logits: Tensor, onehot: Tensor) -> Tensor:
    return torch.logsumexp(logits, dim=1) - torch.sum(logits * onehot, dim=1)


def _conjugate_gradient(matvec: Callable[[Tensor], Tensor], b: Tensor, v0: Tensor, tol: float) -> Tensor:
    """Solve A v = b (A symmetric positive definite) to ‖A v − b‖ ≤ tol · max(1, ‖b‖), leaving the
    loop as soon as it gets there (exact answers are computed outside the timed steps)."""
    return conjugate_gradient(matvec, b, v0=v0, maxiter=CG_MAX_ITERATIONS, tol=tol, atol=tol, early_exit=True)


class LogRegMulticlass(PenaltySelection):
    """Per-class L2 penalties of a multinomial logistic regression, selected on a validation loss."""

    name = "logreg_multiclass"
    description = "Per-class L2 penalty selection for multinomial logistic regression (covtype, digits)"
    Params = LogRegMulticlassParams
    target_metric = "relative_grad_norm2"
    target_value = 1e-2
    divergence_metric = "val_loss"
    value_metric = "val_loss"
    float64_attributes = ("X_train64", "Y_train64", "X_val64", "Y_val64", "X_test64", "Y_test64")

    def __init__(self, params: LogRegMulticlassParams, generator: torch.Generator) -> None:
        super().__init__(params, generator)
        p = params
        split = load_split(p.dataset, p.val_fraction, p.n_train_max, p.batch_size, generator)
        split = prepare_features(split, p.standardize, p.intercept)
        K = self.n_classes = split.n_classes
        onehot = lambda labels: F.one_hot(labels, K).to(torch.float64)  # noqa: E731
        self.train = blocks(split.X_train.clone(), p.batch_size)
        self.train_labels = blocks(onehot(split.y_train), p.batch_size)
        self.val = blocks(split.X_val.clone(), p.batch_size)
        self.val_labels = blocks(onehot(split.y_val), p.batch_size)
        self.X_train64, self.Y_train64 = split.X_train, onehot(split.y_train)
        self.X_val64, self.Y_val64 = split.X_val, onehot(split.y_val)
        self.X_test64, self.Y_test64 = split.X_test, onehot(split.y_test)
        self.n_features = split.X_train.shape[1]
        self.dim_x, self.dim_y = K, self.n_features * K
        self.n_inner_batches, self.n_outer_batches = len(self.train), len(self.val)
        self.baseline_accuracy = majority_accuracy(split.y_train, split.y_test, K)
        self._cache: dict[str, Tensor] = {}  # last exact solve: x, y*(x), v*(x)

    def _matrix(self, y: Tensor) -> Tensor:
        return y.reshape(self.n_features, self.n_classes)

    # -- objectives -----------------------------------------------------------------------------
    def hyperparameter_box(self) -> HyperparameterBox:
        """Log-penalties in [−5, 5], the reference benchmark's search range (solvers/optuna.py)."""
        return HyperparameterBox.uniform(self.dim_x, -5.0, 5.0)

    def inner(self, x: Tensor, y: Tensor, batch: Tensor | None) -> Tensor:
        A, Y = rows(self.train, batch, self.block), rows(self.train_labels, batch, self.block)
        W = self._matrix(y)
        return torch.mean(_cross_entropy(A @ W, Y)) + 0.5 * torch.sum(torch.exp(x) * W * W)

    def outer(self, x: Tensor, y: Tensor, batch: Tensor | None) -> Tensor:
        A, Y = rows(self.val, batch, self.block), rows(self.val_labels, batch, self.block)
        return torch.mean(_cross_entropy(A @ self._matrix(y), Y))

    # -- hand-derived oracles ---------------------------------------------------------------------
    def _train_probabilities(self, y: Tensor, batch: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        A, Y = rows(self.train, batch, self.block), rows(self.train_labels, batch, self.block)
        return A, Y, torch.softmax(A @ self._matrix(y), dim=1)

    def grad_inner_y(self, x: Tensor, y: Tensor, batch: Tensor | None) -> Tensor:
        A, Y, P = self._train_probabilities(y, batch)
        return ((A.T @ (P - Y)) / A.shape[0] + self._matrix(y) * torch.exp(x)).reshape(-1)

    def grad_inner(self, x: Tensor, y: Tensor, batch: Tensor | None) -> tuple[Tensor, Tensor]:
        W = self._matrix(y)
        return 0.5 * torch.exp(x) * torch.sum(W * W, dim=0), self.grad_inner_y(x, y, batch)

    def grad_outer(self, x: Tensor, y: Tensor, batch: Tensor | None) -> tuple[Tensor, Tensor]:
        A, Y = rows(self.val, batch, self.block), rows(self.val_labels, batch, self.block)
        P = torch.softmax(A @ self._matrix(y), dim=1)
        return torch.zeros_like(x), ((A.T @ (P - Y)) / A.shape[0]).reshape(-1)

    def hvp_inner(self, x: Tensor, y: Tensor, v: Tensor, batch: Tensor | None) -> Tensor:
        A, _, P = self._train_probabilities(y, batch)
        V = self._matrix(v)
        PU = P * (A @ V)
        curvature = PU - P * PU.sum(1, keepdim=True)
        return ((A.T @ curvature) / A.shape[0] + V * torch.exp(x)).reshape(-1)

    def cross_inner(self, x: Tensor, y: Tensor, v: Tensor, batch: Tensor | None) -> Tensor:
        return torch.exp(x) * torch.sum(self._matrix(y) * self._matrix(v), dim=0)

    def cross_t_inner(self, x: Tensor, y: Tensor, u: Tensor, batch: Tensor | None) -> Tensor:
        return (self._matrix(y) * (torch.exp(x) * u)).reshape(-1)

    def hvp_cross_inner(self, x: Tensor, y: Tensor, v: Tensor, batch: Tensor | None) -> tuple[Tensor, Tensor]:
        return self.hvp_inner(x, y, v, batch), self.cross_inner(x, y, v, batch)

    # -- exact quantities (float64, full batch) ---------------------------------------------------
    def _exact_grad(self, penalty: Tensor, W: Tensor) -> Tensor:
        P = torch.softmax(self.X_train64 @ W, dim=1)
        return (self.X_train64.T @ (P - self.Y_train64)) / len(self.X_train64) + W * penalty

    def _exact_hvp(self, penalty: Tensor, P: Tensor, v: Tensor) -> Tensor:
        A, V = self.X_train64, self._matrix(v)
        PU = P * (A @ V)
        return ((A.T @ (PU - P * PU.sum(1, keepdim=True))) / len(A) + V * penalty).reshape(-1)

    def _exact_inner(self, penalty: Tensor, W: Tensor) -> float:
        losses = _cross_entropy(self.X_train64 @ W, self.Y_train64)
        return float(torch.mean(losses) + 0.5 * torch.sum(penalty * W * W))

    def _solve(self, x: Tensor) -> dict[str, Tensor]:
        """y*(x) by Newton-CG with Armijo backtracking (g is strongly convex in W), then v*(x)."""
        x = x.detach().to(torch.float64)
        if "x" in self._cache and torch.equal(self._cache["x"], x):
            return self._cache
        penalty = torch.exp(x)
        start = self._cache.get("y_star")  # warm start, unless a diverged run left NaN in it
        W = (start.clone() if start is not None and bool(torch.isfinite(start).all())
             else torch.zeros(self.dim_y, dtype=torch.float64, device=x.device))
        W = self._matrix(W.clone())
        for _ in range(NEWTON_MAX_ITERATIONS):
            grad = self._exact_grad(penalty, W)
            grad_norm = float(torch.linalg.vector_norm(grad))
            if not grad_norm > GRAD_TOLERANCE:
                break
            P = torch.softmax(self.X_train64 @ W, dim=1)
            direction = self._matrix(_conjugate_gradient(
                lambda v: self._exact_hvp(penalty, P, v), grad.reshape(-1), torch.zeros_like(grad).reshape(-1),
                tol=min(0.1, grad_norm) * 1e-2))
            step, value, slope = 1.0, self._exact_inner(penalty, W), float(torch.sum(grad * direction))
            while step > 1e-10 and grad_norm > 1e-6 and \
                    self._exact_inner(penalty, W - step * direction) > value - 1e-4 * step * slope:
                step /= 2
            W = W - step * direction
        P = torch.softmax(self.X_train64 @ W, dim=1)
        P_val = torch.softmax(self.X_val64 @ W, dim=1)
        grad_f = ((self.X_val64.T @ (P_val - self.Y_val64)) / len(self.X_val64)).reshape(-1)
        v = _conjugate_gradient(lambda u: self._exact_hvp(penalty, P, u), grad_f,
                                self._cache.get("v_star", torch.zeros_like(grad_f)), tol=1e-12)
        self._cache = {"x": x.clone(), "y_star": W.reshape(-1), "v_star": v}
        return self._cache

    def value(self, x: Tensor) -> Tensor:
        """h(x) = f(x, y*(x)): validation loss of the exactly trained model."""
        return torch.mean(_cross_entropy(self.X_val64 @ self._matrix(self.y_star(x)), self.Y_val64))

    def hypergradient(self, x: Tensor) -> Tensor:
        """∇h(x) = ∇_x f − ∇²_xW g v* = −e^x ⊙ colsum(W* ⊙ v*) (implicit differentiation)."""
        solved = self._solve(x)
        return -torch.exp(solved["x"]) * torch.sum(self._matrix(solved["y_star"]) * self._matrix(solved["v_star"]), dim=0)

    # -- metrics ------------------------------------------------------------------------------------
    def evaluate(self, x: Tensor, y: Tensor) -> dict[str, float]:
        x64, W = x.detach().to(torch.float64), self._matrix(y.detach().to(torch.float64))
        initial = self._initial_grad_norm2()
        grad_norm2 = float(torch.sum(self.hypergradient(x64) ** 2))
        val_logits, test_logits = self.X_val64 @ W, self.X_test64 @ W
        val_loss = float(torch.mean(_cross_entropy(val_logits, self.Y_val64)))
        return {
            "h": float(self.value(x64)),  # h(x) = f(x, y*(x)), exact
            "grad_norm2": grad_norm2,
            "relative_grad_norm2": grad_norm2 / initial if initial > 0 else grad_norm2,
            "inner_distance": float(torch.sum((y.detach().to(torch.float64) - self.y_star(x64)) ** 2)),
            "val_loss": val_loss,  # f(x, y) at the solver's y
            "val_accuracy": float((val_logits.argmax(1) == self.Y_val64.argmax(1)).double().mean()),
            "test_loss": float(torch.mean(_cross_entropy(test_logits, self.Y_test64))),
            "test_accuracy": float((test_logits.argmax(1) == self.Y_test64.argmax(1)).double().mean()),
            "baseline_accuracy": self.baseline_accuracy,
            "mean_log_penalty": float(x64.mean()),
        }
