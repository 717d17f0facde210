"""Fidelity of the zeroth-order (ES-Jacobian) family on the quadratic.

On the quadratic, y_T(x) after T gradient steps is affine in x with Jacobian
J_T = Σ_{t<T} (I − αĀ)^t (−αC̄ᵀ) → J = −Ā⁻¹C̄ᵀ, so the Gaussian-smoothing estimate
Ĵ = (1/Q) Σ δ_q u_qᵀ equals J_T (1/Q) Σ u_q u_qᵀ exactly, and its error to the true Jacobian
shrinks like 1/√Q (over seeds) once T is large.
"""
from __future__ import annotations

import math

import torch

from benchopt_bilevel import rng
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import get_solver
from benchopt_bilevel.solvers.esj import inner_run, jacobian_estimate, perturbed_differences

from conftest import build_quadratic

STEP = 0.1


def _unrolled_jacobian(problem, n_steps: int) -> torch.Tensor:
    """∂y_T/∂x of T full-batch GD steps on the quadratic, in closed form."""
    contraction = torch.eye(problem.dim_y, dtype=torch.float64) - STEP * problem.A_mean64
    jacobian = torch.zeros(problem.dim_y, problem.dim_x, dtype=torch.float64)
    for _ in range(n_steps):
        jacobian = contraction @ jacobian - STEP * problem.C_mean64.T
    return jacobian


def _estimate(problem, oracles, x, n_directions: int, seed: int, n_steps: int, smoothing: float = 0.1,
              batches=None):
    directions = rng.normal(rng.make_key(seed), (n_directions, problem.dim_x), torch.float64)
    batches = [None] * n_steps if batches is None else batches
    y0 = problem.y0()
    _, differences = perturbed_differences(lambda x_: inner_run(oracles, x_, y0, STEP, batches), x,
                                           directions, smoothing)
    return directions, jacobian_estimate(directions, differences)


def test_finite_difference_is_exact_on_the_affine_inner_path():
    problem = build_quadratic(dim_x=4, dim_y=6)
    oracles = Oracles(problem)
    x = torch.randn(4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    directions, estimate = _estimate(problem, oracles, x, 7, seed=3, n_steps=12)
    expected = _unrolled_jacobian(problem, 12) @ (directions.T @ directions) / 7
    assert torch.allclose(estimate, expected, atol=1e-10)
    assert oracles.calls["grad_inner_full"] == (7 + 1) * 12


def test_jacobian_estimate_tends_to_true_jacobian_as_directions_grow():
    problem = build_quadratic(dim_x=4, dim_y=6)
    oracles = Oracles(problem)
    x = torch.randn(4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    true_jacobian = problem.J
    counts, seeds = (1, 4, 16, 64), range(8)
    mean_errors = []
    for n_directions in counts:
        errors = [float(torch.linalg.matrix_norm(_estimate(problem, oracles, x, n_directions, seed, 30)[1]
                                                 - true_jacobian)) for seed in seeds]
        mean_errors.append(sum(errors) / len(errors))
    assert all(later < earlier for earlier, later in zip(mean_errors, mean_errors[1:])), mean_errors
    # Monte-Carlo rate: 64x more directions should cut the error by about 8 (allow 4)
    assert mean_errors[-1] < mean_errors[0] / 4, mean_errors
    # E‖(1/Q) Σ u uᵀ − I‖²_F = d_x (d_x + 1) / Q: relative error about √((d_x + 1) / Q)
    relative = mean_errors[-1] / float(torch.linalg.matrix_norm(true_jacobian))
    assert relative < 1.5 * math.sqrt((problem.dim_x + 1) / counts[-1]), relative


def test_esj_hypergradient_with_many_directions_is_close_to_exact():
    problem = build_quadratic(dim_x=4, dim_y=6, L_cross=3.0)
    x = torch.randn(4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    exact = problem.hypergradient(x)
    errors = {}
    for n_directions in (1, 256):
        solver = get_solver("esj")(n_directions=n_directions, n_inner_steps=30)
        oracles = Oracles(problem)
        state = solver.init(oracles, x, problem.y0(), rng.make_key(5))
        estimate = solver.step(oracles, state)["hypergradient"]
        errors[n_directions] = float(torch.linalg.vector_norm(estimate - exact) / torch.linalg.vector_norm(exact))
    assert errors[256] < 0.25 and errors[256] < errors[1], errors


def test_stochastic_version_reuses_its_batches_across_perturbed_runs():
    """Common batches make y_T(x) affine along the SGD path: the estimate is independent of μ."""
    problem = build_quadratic(dim_x=4, dim_y=6)
    oracles = Oracles(problem)
    x = torch.randn(4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    batches = [oracles.sample_inner(k) for k in rng.split(rng.make_key(9), 10)]
    assert len({int(b) for b in batches}) > 1
    _, coarse = _estimate(problem, oracles, x, 5, seed=4, n_steps=10, smoothing=0.1, batches=batches)
    _, fine = _estimate(problem, oracles, x, 5, seed=4, n_steps=10, smoothing=1e-3, batches=batches)
    assert torch.allclose(coarse, fine, atol=1e-8)
    # and the mini-batch path differs from the full-batch one
    _, full = _estimate(problem, oracles, x, 5, seed=4, n_steps=10)
    assert not torch.allclose(coarse, full, atol=1e-6)


def test_esj_uses_no_second_order_oracle():
    problem = build_quadratic()
    for name in ("esj", "esj-s"):
        solver = get_solver(name)()
        oracles = Oracles(problem)
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0))
        solver.step(oracles, state)
        assert set(oracles.calls) <= {"grad_inner", "grad_outer", "grad_inner_full", "grad_outer_full"}
        assert not solver.needs_second_order
