"""Linear solvers converge to v* = A⁻¹b at their documented rates.

- CG: ‖v_k − v*‖_A ≤ 2 ((√κ − 1)/(√κ + 1))^k ‖v*‖_A (Chebyshev bound, from v₀ = 0);
- Neumann with step α: error geometric with ratio 1 − αμ when the spectrum ends at μ;
- Lanczos: the k-th Galerkin iterate is the k-th CG iterate in exact arithmetic (close in float64);
  its residual tracked through the pivots of T is the true residual;
- fixed point (warm-started gradient descent on the system): error contracts by 1 − αμ per step;
- subspace (SubBiO's span{b, v − η(Av − b)}): at least gradient descent's rate, (1 − ημ)^(k−1);
- SubBiO and LancBiO with x and y frozen compute exactly those iterates (subspace, Lanczos = CG,
  warm-started from the anchor at a restart), and on the quadratic their hypergradient becomes exact;
- AmIGO runs M iterations of its linear solver per step (CG: exact at M = dim_y; SGD: M steps).
"""
from __future__ import annotations

import math

import pytest
import torch

from benchopt_bilevel import rng
from benchopt_bilevel.linalg import (SOLVERS, conjugate_gradient, fixed_point, galerkin_coefficients, lanczos,
                                     lanczos_coefficients, lanczos_extend, lanczos_start, lanczos_tridiagonal,
                                     neumann, orthonormal_rows, subspace)
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import solvers

from conftest import build_quadratic


def _system(d=40, mu=0.1, L=1.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    A = (q * torch.linspace(mu, L, d, dtype=torch.float64)) @ q.T
    b = torch.randn(d, generator=gen, dtype=torch.float64)
    return A, b, torch.linalg.solve(A, b)


def _a_norm(A, e):
    return float(torch.sqrt(e @ A @ e))


@pytest.mark.parametrize("kappa", [10.0, 100.0])
def test_cg_error_below_chebyshev_bound(kappa):
    A, b, exact = _system(mu=1.0 / kappa, L=1.0)
    rate = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
    initial = _a_norm(A, exact)
    for k in (1, 5, 10, 20):
        error = _a_norm(A, conjugate_gradient(lambda w: A @ w, b, maxiter=k) - exact)
        assert error <= 2 * rate**k * initial * (1 + 1e-9), (k, error, 2 * rate**k * initial)
    # and the bound is not vacuous: CG is still far from exact after a few steps
    assert _a_norm(A, conjugate_gradient(lambda w: A @ w, b, maxiter=2) - exact) > 1e-3 * initial


def test_neumann_error_is_geometric_with_ratio_one_minus_step_mu():
    mu, step = 0.1, 1.0  # spectrum [0.1, 1]: contraction max |1 − αλ| = 1 − αμ = 0.9
    A, b, exact = _system(mu=mu, L=1.0)
    errors = [float(torch.linalg.vector_norm(neumann(lambda w: A @ w, b, maxiter=k, step=step) - exact))
              for k in (20, 40, 60, 80)]
    ratios = [later / earlier for earlier, later in zip(errors, errors[1:])]
    for ratio in ratios:  # asymptotically the slowest eigen-direction dominates
        assert ratio == pytest.approx((1 - step * mu) ** 20, rel=0.1), ratios
        assert ratio <= (1 - step * mu) ** 20 * 1.01


@pytest.mark.parametrize("k", [1, 3, 8, 15, 25])
def test_lanczos_matches_cg(k):
    A, b, exact = _system(d=30, mu=0.05, L=1.0)
    cg = conjugate_gradient(lambda w: A @ w, b, maxiter=k)
    lz = lanczos(lambda w: A @ w, b, maxiter=k)
    torch.testing.assert_close(lz, cg, rtol=1e-9, atol=1e-10 * float(torch.linalg.vector_norm(exact)))
    if k < 15:
        assert float(torch.linalg.vector_norm(lz - exact)) > 1e-6  # not trivially exact


def test_lanczos_warm_start_matches_cg_and_costs_one_residual():
    A, b, exact = _system(d=30)
    v0 = exact + 0.01 * torch.randn(30, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    calls = []

    def matvec(w):
        calls.append(1)
        return A @ w

    lz = lanczos(matvec, b, v0=v0, maxiter=6)
    assert len(calls) == 7
    torch.testing.assert_close(lz, conjugate_gradient(lambda w: A @ w, b, v0=v0, maxiter=6))


def test_lanczos_basis_is_orthonormal_and_tridiagonalizes():
    A, b, _ = _system(d=30)
    Q, T, beta0 = lanczos_tridiagonal(lambda w: A @ w, b, 10)
    torch.testing.assert_close(Q @ Q.T, torch.eye(10, dtype=torch.float64))
    torch.testing.assert_close(Q @ A @ Q.T, T)
    torch.testing.assert_close(beta0, torch.linalg.vector_norm(b))


def test_lanczos_breakdown_is_exact_and_finite():
    # b in a 3-dimensional invariant subspace: the basis stops after 3 vectors, the solve is exact.
    A = torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=torch.float64))
    b = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    v = lanczos(lambda w: A @ w, b, maxiter=10)
    torch.testing.assert_close(v, torch.linalg.solve(A, b))
    torch.testing.assert_close(lanczos(lambda w: A @ w, torch.zeros_like(b), maxiter=4), torch.zeros_like(b))


def test_lanczos_has_the_common_signature_but_is_not_an_aid_solver():
    # Same call as the registered solvers (step accepted and ignored), used by LancBiO through its
    # pieces rather than by name: no AID method picks it.
    A, b, exact = _system(d=12, mu=0.5)
    v = lanczos(lambda w: A @ w, b, v0=None, maxiter=12, tol=0.0, step=0.3)
    torch.testing.assert_close(v, exact)
    assert lanczos not in SOLVERS.values() and subspace not in SOLVERS.values()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lanczos_dtype(dtype):
    A, b, exact = _system(d=20, mu=0.5)
    v = lanczos(lambda w: A.to(dtype) @ w, b.to(dtype), maxiter=20)
    assert v.dtype == dtype
    assert float(torch.linalg.vector_norm(v.double() - exact)) < (1e-4 if dtype == torch.float32 else 1e-10)


# -- fixed point, subspace, Lanczos pieces --------------------------------------------------------
def test_fixed_point_error_contracts_by_one_minus_step_mu_per_iteration():
    mu, step = 0.1, 1.0
    A, b, exact = _system(mu=mu, L=1.0)
    v0 = torch.randn(40, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    initial = float(torch.linalg.vector_norm(v0 - exact))
    for k in (5, 20, 60):
        error = float(torch.linalg.vector_norm(fixed_point(lambda w: A @ w, b, v0=v0, maxiter=k, step=step) - exact))
        assert error <= (1 - step * mu) ** k * initial * (1 + 1e-9)
        assert error >= (1 - step * mu) ** k * initial * 1e-3  # the rate is attained, not beaten by far


def test_subspace_is_at_least_as_good_as_gradient_descent():
    # span{b, v − η(Av − b)} holds the gradient step from v: ‖e_k‖_A ≤ (1 − ημ)^(k−1) ‖e_1‖_A.
    mu, step = 0.1, 1.0
    A, b, exact = _system(mu=mu, L=1.0)
    first = _a_norm(A, subspace(lambda w: A @ w, b, maxiter=1, step=step) - exact)
    assert first < _a_norm(A, exact)  # the Galerkin step along b
    errors = []
    for k in (2, 5, 10, 30):
        errors.append(_a_norm(A, subspace(lambda w: A @ w, b, maxiter=k, step=step) - exact))
        assert errors[-1] <= (1 - step * mu) ** (k - 1) * first * (1 + 1e-9), (k, errors[-1])
    assert all(later < earlier for earlier, later in zip(errors, errors[1:])), errors
    # ... and slower than CG, which is optimal over the whole Krylov space
    assert errors[2] > _a_norm(A, conjugate_gradient(lambda w: A @ w, b, maxiter=10) - exact)


def test_subspace_counts_matvecs_and_warm_start():
    A, b, exact = _system(d=30)
    calls = []

    def matvec(w):
        calls.append(1)
        return A @ w

    subspace(matvec, b, maxiter=6)
    assert len(calls) == 6
    calls.clear()
    v0 = exact + 0.01 * torch.randn(30, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    v = subspace(matvec, b, v0=v0, maxiter=6)
    assert len(calls) == 7
    assert _a_norm(A, v - exact) < _a_norm(A, v0 - exact)


@pytest.mark.parametrize("solve", [subspace, lanczos])
@pytest.mark.parametrize("tol", [1e-2, 1e-5])
def test_tol_stops_at_the_requested_residual(solve, tol):
    A, b, _ = _system(mu=0.05)
    v = solve(lambda w: A @ w, b, maxiter=200 if solve is subspace else 40, tol=tol)
    relative = float(torch.linalg.vector_norm(A @ v - b) / torch.linalg.vector_norm(b))
    assert relative <= tol
    assert relative > 1e-3 * tol  # frozen near the tolerance, not run to machine precision


def test_lanczos_tracked_residual_is_the_true_residual():
    A, b, _ = _system(d=30, mu=0.05)
    basis = lanczos_start(b, 12)
    for k in range(1, 13):
        basis = lanczos_extend(basis, A @ basis["q"])
        v = basis["Q"].T @ lanczos_coefficients(basis, b)
        true = float(torch.linalg.vector_norm(b - A @ v))
        assert float(basis["residual"]) == pytest.approx(true, rel=1e-6), k


def test_galerkin_ignores_a_dependent_direction():
    A, b, _ = _system(d=10)
    W = orthonormal_rows(torch.stack([b, 2 * b]))
    assert float(torch.linalg.vector_norm(W[1])) == 0.0
    c = galerkin_coefficients(W, W @ A, b)
    torch.testing.assert_close(W.T @ c, (b @ b) / (b @ A @ b) * b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_subspace_dtype(dtype):
    A, b, exact = _system(d=20, mu=0.5)
    v = subspace(lambda w: A.to(dtype) @ w, b.to(dtype), maxiter=60)
    assert v.dtype == dtype
    assert float(torch.linalg.vector_norm(v.double() - exact)) < (1e-4 if dtype == torch.float32 else 1e-10)


# -- SubBiO and LancBiO: with x and y frozen, their v is the iterate of the matching linear solver ----
_FROZEN = dict(mu_inner=0.1, L_inner=1.0, dim_x=5, dim_y=20)  # condition 10: a few steps are not exact


def _frozen_run(name, n_steps, **params):
    """(v after n_steps with x frozen and y = y*(x), the system matvec, b): step_outer ≈ 0."""
    problem = build_quadratic(**_FROZEN)
    oracles = Oracles(problem)
    x = problem.x0() + 1.0
    y = problem.y_star(x)
    solver = solvers()[name](step_outer=1e-300, **params)
    with torch.no_grad():
        state = solver.init(oracles, x, y, rng.make_key(0))
        for _ in range(n_steps):
            state = solver.step(oracles, state)
        b = oracles.grad_outer(x, y, None)[1]
    return state["v"], (lambda w: oracles.hvp_inner(x, y, w, None)), b, problem.v_star(x)


@pytest.mark.parametrize("k", [1, 3, 8])
def test_subbio_v_is_the_subspace_iterate(k):
    step_inner = 0.5
    v, matvec, b, v_star = _frozen_run("subbio", k, step_inner=step_inner)
    with torch.no_grad():
        torch.testing.assert_close(v, subspace(matvec, b, maxiter=k, step=step_inner))
    assert float(torch.linalg.vector_norm(v - v_star)) > 1e-6  # not yet exact


_FIXED_DIMENSION = dict(dim_freq=10**6)  # LancBiO's subspace dimension m stays at dim_start


@pytest.mark.parametrize("m, j", [(1, 1), (4, 3), (4, 4), (9, 9)])
def test_lancbio_steps_within_a_cycle_are_a_lanczos_solve(m, j):
    # j ≤ m steps from v = 0: a j-vector Lanczos basis, whose Galerkin iterate is CG's j-th.
    v, matvec, b, v_star = _frozen_run("lancbio", j, dim_start=m, dim_max=m, **_FIXED_DIMENSION)
    with torch.no_grad():
        torch.testing.assert_close(v, conjugate_gradient(matvec, b, maxiter=j))
    assert float(torch.linalg.vector_norm(v - v_star)) > 1e-6


def test_lancbio_second_cycle_restarts_from_the_anchor():
    # Two cycles of m steps: v = v̄ + Lanczos(m) on A δ = b − A v̄ with v̄ the first cycle's v, which
    # equals CG warm-started from v̄ (CG's warm start spends its extra matvec on that residual).
    v_one, matvec, b, v_star = _frozen_run("lancbio", 4, dim_start=4, dim_max=4, **_FIXED_DIMENSION)
    v_two, _, _, _ = _frozen_run("lancbio", 8, dim_start=4, dim_max=4, **_FIXED_DIMENSION)
    with torch.no_grad():
        torch.testing.assert_close(v_two, conjugate_gradient(matvec, b, v0=v_one, maxiter=4))
    assert float(torch.linalg.vector_norm(v_two - v_star)) < float(torch.linalg.vector_norm(v_one - v_star))


@pytest.mark.parametrize("name, n_steps", [("subbio", 150), ("lancbio", 200)])
def test_hypergradient_becomes_exact_and_x_reaches_the_solution(name, n_steps):
    problem = build_quadratic()
    solver = solvers()[name]()
    oracles = Oracles(problem)
    errors = []
    with torch.no_grad():
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0))
        scale = float(torch.linalg.vector_norm(problem.hypergradient(problem.x0())))
        for _ in range(n_steps):
            state = solver.step(oracles, state)
            # the estimate was taken at the x that its last update moved
            x_before = state["x"] + solver.params.step_outer * state["hypergradient"]
            errors.append(float(torch.linalg.vector_norm(state["hypergradient"] - problem.hypergradient(x_before))) / scale)
    assert errors[-1] < 1e-5 and errors[-1] < 1e-2 * errors[0], errors
    distance = float(torch.linalg.vector_norm(state["x"] - problem.x_star) / torch.linalg.vector_norm(problem.x_star))
    assert distance < 1e-3, distance


# -- AmIGO: M iterations of its linear solver per outer step (Arbel & Mairal, Alg. 1 and 3) -------
def _amigo_step(**params):
    """(v after one AmIGO step from (x, y*(x)), v0 = 0, the hvp calls, the declared hvp calls, the
    system matvec, v*) on the quadratic whose every mini-batch is the full batch."""
    problem = build_quadratic(noise=0.0)  # dim_y = 5
    oracles = Oracles(problem)
    x = problem.x0() + 1.0
    y = problem.y_star(x)
    solver = solvers()["amigo"](**params)
    with torch.no_grad():
        state = solver.step(oracles, solver.init(oracles, x, y, rng.make_key(0)))
    matvec = lambda w: Oracles(problem).hvp_inner(x, y, w, None)  # noqa: E731
    return (state["v"], oracles.calls["hvp"], solver.oracle_cost(oracles.facts)["hvp"], matvec,
            oracles.grad_outer_y(x, y, None), problem.v_star(x))


def test_amigo_cg_runs_m_iterations():
    """M CG iterations on a 5-dimensional system: exact at M = 5 (finite termination), not at M = 4;
    M + 1 Hessian products (the first residual of the warm start)."""
    v, calls, declared, _, _, v_star = _amigo_step(linear_solver="cg", n_linear_steps=5)
    assert float(torch.linalg.vector_norm(v - v_star)) < 1e-10 * float(torch.linalg.vector_norm(v_star))
    assert calls == declared == 6
    v, calls, declared, _, _, v_star = _amigo_step(linear_solver="cg", n_linear_steps=4)
    assert float(torch.linalg.vector_norm(v - v_star)) > 1e-6 * float(torch.linalg.vector_norm(v_star))
    assert calls == declared == 5


@pytest.mark.parametrize("m", [1, 4])
def test_amigo_sgd_runs_m_steps_on_the_linear_system(m):
    v, calls, declared, matvec, b, _ = _amigo_step(n_linear_steps=m, step_inner=0.1)
    with torch.no_grad():
        torch.testing.assert_close(v, fixed_point(matvec, b, maxiter=m, step=0.1), rtol=1e-10, atol=1e-12)
    assert calls == declared == m


def test_amigo_cold_start_ignores_the_previous_y_and_v():
    problem = build_quadratic()
    oracles = Oracles(problem)
    moved = {"y": torch.full((problem.dim_y,), 3.0, dtype=torch.float64),
             "v": torch.full((problem.dim_y,), -2.0, dtype=torch.float64)}
    for warm in (False, True):
        solver = solvers()["amigo"](warm_start=warm)
        with torch.no_grad():
            state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0))
            fresh, carried = solver.step(oracles, state), solver.step(oracles, {**state, **moved})
        same = all(torch.equal(fresh[k], carried[k]) for k in ("x", "y", "v"))
        assert same != warm
