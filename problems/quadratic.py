"""Quadratic bilevel problem with per-sample matrices and every answer in closed form.

    g(x, y) = 1/n Σ_i ½ yᵀA_i y + ½ xᵀB_i x + xᵀC_i y + a_iᵀy + b_iᵀx
    f(x, y) = 1/m Σ_j ½ yᵀF_j y + ½ xᵀH_j x + xᵀK_j y + f_jᵀy + h_jᵀx

With means Ā, C̄, ... : y*(x) = −Ā⁻¹(C̄ᵀx + ā) = Jx + c, v*(x) = Ā⁻¹∇_y f(x, y*(x)),
∇h(x) = ∇_x f(x, y*) − C̄ v*, and h is a strongly convex quadratic whose minimizer x* solves
one linear system. The spectrum of Ā lies in [mu_inner, L_inner]; ‖C̄‖₂ = L_cross; each sample's
matrix is the mean plus a centred symmetric perturbation of relative size `noise`, so mini-batch
gradients are noisy but their mean is exact.

Oracles are structure-aware (average the mini-batch block's matrices, then matrix-vector
products) and are checked against torch.func in the tests. A mini-batch of b samples reads b
per-sample matrices and a full-batch oracle reads all n, as in the reference benchmark: means
are deliberately not precomputed for the oracles, so that the cost of an oracle grows with the
samples it touches, as it does on real data (deterministic methods would otherwise look n/b
times cheaper than they are). Exact answers use precomputed float64 means (never timed).

Layout: the samples are stored samples-last, (n_batches, rows, cols, batch_size), so that a
block's mean is a reduction over contiguous memory (one streaming read of the block, eager and
compiled alike). Stored samples-first, the mean over a block's 64 matrices reads, for every
vector of outputs, 64 rows d² apart. speed/test_bench_growth.py times a step against a plain
read of its blocks. The attributes `A`, ..., `h` still read and assign in the samples-first
layout (n_batches, batch_size, ...), as views.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from benchopt_bilevel.problem import HyperparameterBox, Problem

Tensor = torch.Tensor


@dataclass
class QuadraticParams:
    n_inner: int = 1024
    n_outer: int = 1024
    dim_x: int = 100
    dim_y: int = 100
    batch_size: int = 64
    mu_inner: float = 0.1
    L_inner: float = 1.0
    L_cross: float = 0.1
    mu_outer: float = 0.1
    L_outer: float = 1.0
    noise: float = 0.5
    seed: int = 0  # seed of the data (the run's seed drives the solver)

    def __post_init__(self) -> None:
        for name in ("n_inner", "n_outer", "dim_x", "dim_y", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.n_inner % self.batch_size or self.n_outer % self.batch_size:
            raise ValueError(
                f"batch_size={self.batch_size} must divide n_inner={self.n_inner} and n_outer={self.n_outer}"
            )
        if not 0 < self.mu_inner <= self.L_inner:
            raise ValueError(f"need 0 < mu_inner <= L_inner, got {self.mu_inner} and {self.L_inner}")
        if not 0 < self.mu_outer <= self.L_outer:
            raise ValueError(f"need 0 < mu_outer <= L_outer, got {self.mu_outer} and {self.L_outer}")
        if self.noise < 0 or self.L_cross < 0:
            raise ValueError("noise and L_cross must be non-negative")


def _orthogonal(d: int, generator: torch.Generator) -> Tensor:
    q, r = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def _spd(d: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    q = _orthogonal(d, generator)
    return (q * torch.linspace(low, high, d, dtype=torch.float64)) @ q.T


def _with_norm(rows: int, cols: int, norm: float, generator: torch.Generator) -> Tensor:
    m = torch.randn(rows, cols, generator=generator, dtype=torch.float64)
    return m * (norm / torch.linalg.matrix_norm(m, ord=2))


def _samples(mean: Tensor, n: int, scale: float, symmetric: bool, generator: torch.Generator) -> Tensor:
    """n matrices averaging exactly to `mean`, each perturbed by about `scale` in spectral norm."""
    rows, cols = mean.shape
    e = torch.randn(n, rows, cols, generator=generator, dtype=torch.float64)
    if symmetric:
        e = (e + e.transpose(1, 2)) / 2
    e = e - e.mean(0)
    e = e * (scale / (2.0 * max(rows, cols) ** 0.5))
    return mean + e


class _SamplesLast:
    """A data attribute stored samples-last, read and assigned samples-first (views both ways)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.stored = f"_{name}_samples_last"

    def __get__(self, problem: "Quadratic", owner: type | None = None) -> Tensor:
        return getattr(problem, self.stored).movedim(-1, 1)

    def __set__(self, problem: "Quadratic", samples_first: Tensor) -> None:
        setattr(problem, self.stored, samples_first.movedim(1, -1).contiguous())


class Quadratic(Problem):
    """Quadratic bilevel problem, exact y*, v*, h, ∇h and x*."""

    name = "quadratic"
    description = "Synthetic quadratic with per-sample matrices; every answer in closed form"
    Params = QuadraticParams
    target_metric = "relative_suboptimality"
    target_value = 1e-3  # (h(x) − h*) / (h(x0) − h*) ≤ 1e-3
    divergence_metric = "relative_suboptimality"
    value_metric = "h"
    float64_attributes = ("J", "c", "A_mean64", "C_mean64", "F_mean64", "H_mean64", "K_mean64",
                          "a_mean64", "f_mean64", "h_mean64", "b_mean64", "B_mean64",
                          "x_star", "hessian_h", "h_star", "h_x0")

    A, B, C, a, b = (_SamplesLast() for _ in range(5))  # inner data
    F, H, K, f, h = (_SamplesLast() for _ in range(5))  # outer data

    def __init__(self, params: QuadraticParams, generator: torch.Generator) -> None:
        super().__init__(params, generator)
        p = params
        self.dim_x, self.dim_y, self.batch_size = p.dim_x, p.dim_y, p.batch_size
        self.n_inner_batches = p.n_inner // p.batch_size
        self.n_outer_batches = p.n_outer // p.batch_size
        gen = generator
        dx, dy = p.dim_x, p.dim_y

        A = _spd(dy, p.mu_inner, p.L_inner, gen)
        B = _spd(dx, p.mu_inner, p.L_inner, gen)
        C = _with_norm(dx, dy, p.L_cross, gen)
        F = _spd(dy, 0.0, p.L_outer, gen)
        H = _spd(dx, p.mu_outer, p.L_outer, gen)
        K = _with_norm(dx, dy, 0.1 * p.L_cross, gen)
        a = torch.randn(dy, generator=gen, dtype=torch.float64)
        b = torch.randn(dx, generator=gen, dtype=torch.float64)
        f = torch.randn(dy, generator=gen, dtype=torch.float64)
        h = torch.randn(dx, generator=gen, dtype=torch.float64)

        # Closed forms from the means (float64). Shift H so that h is mu_outer-strongly convex.
        J = -torch.linalg.solve(A, C.T)
        c = -torch.linalg.solve(A, a)
        hess = J.T @ F @ J + H + K @ J + J.T @ K.T
        hess = (hess + hess.T) / 2
        shift = max(0.0, p.mu_outer - float(torch.linalg.eigvalsh(hess)[0]))
        H = H + shift * torch.eye(dx, dtype=torch.float64)
        hess = hess + shift * torch.eye(dx, dtype=torch.float64)

        n_in, n_out = p.n_inner, p.n_outer
        lam = p.noise * p.mu_inner
        blocks_in, blocks_out = (self.n_inner_batches, p.batch_size), (self.n_outer_batches, p.batch_size)
        self.A = _samples(A, n_in, lam, True, gen).reshape(*blocks_in, dy, dy)
        self.B = _samples(B, n_in, lam, True, gen).reshape(*blocks_in, dx, dx)
        self.C = _samples(C, n_in, lam, False, gen).reshape(*blocks_in, dx, dy)
        self.a = (a + p.noise * _centred(n_in, dy, gen)).reshape(*blocks_in, dy)
        self.b = (b + p.noise * _centred(n_in, dx, gen)).reshape(*blocks_in, dx)
        self.F = _samples(F, n_out, lam, True, gen).reshape(*blocks_out, dy, dy)
        self.H = _samples(H, n_out, lam, True, gen).reshape(*blocks_out, dx, dx)
        self.K = _samples(K, n_out, lam, False, gen).reshape(*blocks_out, dx, dy)
        self.f = (f + p.noise * _centred(n_out, dy, gen)).reshape(*blocks_out, dy)
        self.h = (h + p.noise * _centred(n_out, dx, gen)).reshape(*blocks_out, dx)

        # Means in float64 for the exact answers.
        self.A_mean64, self.B_mean64, self.C_mean64, self.a_mean64, self.b_mean64 = A, B, C, a, b
        self.F_mean64, self.H_mean64, self.K_mean64, self.f_mean64, self.h_mean64 = F, H, K, f, h
        self.J, self.c, self.hessian_h = J, c, hess
        self.x_star = torch.linalg.solve(hess, -self._grad_h_affine(torch.zeros(dx, dtype=torch.float64)))
        self.h_star = self.value(self.x_star)
        self.h_x0 = self.value(torch.zeros(dx, dtype=torch.float64))

    # -- data of a batch ----------------------------------------------------------------------
    def _mean(self, name: str, batch: Tensor | None) -> Tensor:
        """Mean of data `name` over one block's samples, or over all samples (full batch): one
        read of the block, a reduction over its last, contiguous axis."""
        samples = self.samples_last(name)
        return samples.mean((0, -1)) if batch is None else Problem.block(samples, batch).mean(-1)

    def samples_last(self, name: str) -> Tensor:
        """Data `name` ("A", ..., "h") as stored, (n_batches, ..., batch_size): what an oracle
        reads (the memory-read baseline of speed/test_bench_growth.py reads it too)."""
        return getattr(self, f"_{name}_samples_last")

    def _means(self, names: str, batch: Tensor | None) -> tuple[Tensor, ...]:
        return tuple(self._mean(name, batch) for name in names)

    # -- objectives ---------------------------------------------------------------------------
    def inner(self, x: Tensor, y: Tensor, batch: Tensor | None) -> Tensor:
        A, B, C, a, b = self._means("ABCab", batch)
        return 0.5 * y @ (A @ y) + 0.5 * x @ (B @ x) + x @ (C @ y) + a @ y + b @ x

    def outer(self, x: Tensor, y: Tensor, batch: Tensor | None) -> Tensor:
        F, H, K, f, h = self._means("FHKfh", batch)
        return 0.5 * y @ (F @ y) + 0.5 * x @ (H @ x) + x @ (K @ y) + f @ y + h @ x

    # -- hand-derived oracles (each reads the block data it needs once, as a mean) ---------------
    def grad_inner_y(self, x: Tensor, y: Tensor, batch: Tensor | None) -> Tensor:
        A, C, a = self._means("ACa", batch)
        return A @ y + x @ C + a

    def grad_inner(self, x: Tensor, y: Tensor, batch: Tensor | None) -> tuple[Tensor, Tensor]:
        A, B, C, a, b = self._means("ABCab", batch)
        return B @ x + C @ y + b, A @ y + x @ C + a

    def grad_outer(self, x: Tensor, y: Tensor, batch: Tensor | None) -> tuple[Tensor, Tensor]:
        F, H, K, f, h = self._means("FHKfh", batch)
        return H @ x + K @ y + h, F @ y + x @ K + f

    def hvp_inner(self, x: Tensor, y: Tensor, v: Tensor, batch: Tensor | None) -> Tensor:
        return self._mean("A", batch) @ v

    def cross_inner(self, x: Tensor, y: Tensor, v: Tensor, batch: Tensor | None) -> Tensor:
        return self._mean("C", batch) @ v

    def cross_t_inner(self, x: Tensor, y: Tensor, u: Tensor, batch: Tensor | None) -> Tensor:
        return u @ self._mean("C", batch)

    def hvp_cross_inner(self, x: Tensor, y: Tensor, v: Tensor, batch: Tensor | None) -> tuple[Tensor, Tensor]:
        A, C = self._means("AC", batch)
        return A @ v, C @ v

    def grad_hvp_cross_inner(self, x: Tensor, y: Tensor, v: Tensor, batch: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        # One read of the block's A and C (the step is memory-bound: 64 × d² per matrix); B and b
        # are not read.
        A, C, a = self._means("ACa", batch)
        return A @ y + x @ C + a, A @ v, C @ v

    # -- exact answers (float64) -----------------------------------------------------------------
    def hyperparameter_box(self) -> HyperparameterBox:
        """[−5, 5] per coordinate, the reference benchmark's search range for every problem
        (solvers/optuna.py). It holds x* of the conformance quadratic (‖x*‖∞ = 4.47) but not that
        of the default one (dim_x = 100, ‖x*‖∞ = 12.4): black-box search cannot reach its target."""
        return HyperparameterBox.uniform(self.dim_x, -5.0, 5.0)

    def y_star(self, x: Tensor) -> Tensor:
        return self.J @ x.to(torch.float64) + self.c

    def _grad_h_affine(self, x: Tensor) -> Tensor:
        y = self.J @ x + self.c
        grad_y_f = self.F_mean64 @ y + x @ self.K_mean64 + self.f_mean64
        return self.H_mean64 @ x + self.K_mean64 @ y + self.h_mean64 + self.J.T @ grad_y_f

    def hypergradient(self, x: Tensor) -> Tensor:
        """∇h(x), exact."""
        return self._grad_h_affine(x.to(torch.float64))

    def v_star(self, x: Tensor) -> Tensor:
        """Solution of ∇²_yy g v = ∇_y f at (x, y*(x))."""
        x = x.to(torch.float64)
        y = self.y_star(x)
        return torch.linalg.solve(self.A_mean64, self.F_mean64 @ y + x @ self.K_mean64 + self.f_mean64)

    def value(self, x: Tensor) -> Tensor:
        """h(x) = f(x, y*(x)), exact."""
        x = x.to(torch.float64)
        y = self.J @ x + self.c
        F, H, K, f, h = self.F_mean64, self.H_mean64, self.K_mean64, self.f_mean64, self.h_mean64
        return 0.5 * y @ (F @ y) + 0.5 * x @ (H @ x) + x @ (K @ y) + f @ y + h @ x

    def evaluate(self, x: Tensor, y: Tensor) -> dict[str, float]:
        x64, y64 = x.detach().to(torch.float64), y.detach().to(torch.float64)
        value = float(self.value(x64))
        gap = value - float(self.h_star)
        return {
            "h": value,  # h(x) = f(x, y*(x)), exact
            "suboptimality": gap,
            "relative_suboptimality": gap / float(self.h_x0 - self.h_star),
            "grad_norm2": float(torch.sum(self.hypergradient(x64) ** 2)),
            "inner_distance": float(torch.sum((y64 - self.y_star(x64)) ** 2)),
            "distance_to_optimum": float(torch.sum((x64 - self.x_star) ** 2)),
        }


def _centred(n: int, d: int, generator: torch.Generator) -> Tensor:
    e = torch.randn(n, d, generator=generator, dtype=torch.float64)
    return e - e.mean(0)
