"""Fidelity of the unrolled family (ITD, T-RHG, FMD) and of AID-FP's adjoint, on the quadratic.

- forward mode (FMD) and reverse mode (ITD) give the same hypergradient for the same T;
  T-RHG with K = T is ITD;
- the unrolled hypergradient tends to the implicit one ∇h(x) as T grows, and T-RHG's
  truncation bias shrinks as K grows;
- AID-FP's fixed-point adjoint tends to the exact v* at the documented rate ρ^K,
  ρ = max |1 − αλ(∇²_yy g)|.
"""
from __future__ import annotations

import pytest
import torch

from benchopt_bilevel import rng
from benchopt_bilevel.linalg import fixed_point
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import get_solver

from conftest import build_quadratic


def _hypergradient(name: str, problem, x: torch.Tensor, **params) -> torch.Tensor:
    """The hypergradient estimate of one step of solver `name` from (x, y0 = 0)."""
    solver = get_solver(name)(**params)
    oracles = Oracles(problem)
    with torch.no_grad():
        state = solver.init(oracles, x, problem.y0(), rng.make_key(0))
        return solver.step(oracles, state)["hypergradient"]


def _problem(**overrides):
    """The conformance quadratic with a strong x–y coupling, so the implicit term matters."""
    return build_quadratic(**{"dim_x": 4, "dim_y": 6, "L_cross": 3.0, **overrides})


def _point(problem, seed: int = 1) -> torch.Tensor:
    return torch.randn(problem.dim_x, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _relative_error(estimate: torch.Tensor, problem, x: torch.Tensor) -> float:
    exact = problem.hypergradient(x)
    return float(torch.linalg.vector_norm(estimate - exact) / torch.linalg.vector_norm(exact))


@pytest.mark.parametrize("n_steps", [1, 3, 12])
def test_forward_mode_equals_reverse_mode(n_steps):
    problem = _problem()
    x = _point(problem)
    reverse = _hypergradient("itd", problem, x, n_inner_steps=n_steps)
    forward = _hypergradient("fmd", problem, x, n_inner_steps=n_steps)
    assert torch.allclose(forward, reverse, rtol=1e-12, atol=1e-12)
    # and not trivially: a short unroll is still far from the implicit hypergradient
    if n_steps == 1:
        assert _relative_error(reverse, problem, x) > 1e-2


def test_forward_mode_on_autograd_oracles_equals_reverse_mode():
    """Same identity with torch.func oracles (cross_t_inner by forward mode, vjp for ITD)."""
    problem = _problem(dim_x=3, dim_y=4)
    x = _point(problem)
    results = {}
    for name in ("itd", "fmd"):
        solver = get_solver(name)(n_inner_steps=5)
        oracles = Oracles(problem, autograd=True)
        state = solver.init(oracles, x, problem.y0(), rng.make_key(0))
        results[name] = solver.step(oracles, state)["hypergradient"]
    assert torch.allclose(results["fmd"], results["itd"], rtol=1e-10, atol=1e-12)


def test_truncated_with_full_window_is_itd():
    problem = _problem()
    x = _point(problem)
    full = _hypergradient("t-rhg", problem, x, n_inner_steps=15, n_backward_steps=15)
    assert torch.equal(full, _hypergradient("itd", problem, x, n_inner_steps=15))


@pytest.mark.parametrize("name", ["itd", "fmd", "t-rhg"])
def test_unrolled_hypergradient_tends_to_implicit_one(name):
    problem = _problem()
    x = _point(problem)
    errors = []
    for n_steps in (2, 5, 10, 20, 40):
        extra = {"n_backward_steps": n_steps} if name == "t-rhg" else {}
        errors.append(_relative_error(_hypergradient(name, problem, x, n_inner_steps=n_steps, **extra), problem, x))
    assert all(later < earlier for earlier, later in zip(errors, errors[1:])), errors
    assert errors[0] > 1e-2 and errors[-1] < 1e-8, errors


def test_truncation_bias_shrinks_geometrically_with_window():
    """T-RHG at fixed T: the error of the last-K backward pass decays like (1 − αμ)^K."""
    problem = _problem()
    x = _point(problem)
    step = 0.1
    eigenvalues = torch.linalg.eigvalsh(problem.A_mean64)
    rho = float(torch.max(torch.abs(1 - step * eigenvalues)))
    windows = (1, 2, 4, 8, 16)
    errors = [_relative_error(_hypergradient("t-rhg", problem, x, step_inner=step, n_inner_steps=60,
                                             n_backward_steps=k), problem, x) for k in windows]
    assert all(later < earlier for earlier, later in zip(errors, errors[1:])), errors
    # the contraction bound: error(K) ≲ ρ^K (constant fitted from K = 1)
    for k, error in zip(windows, errors):
        assert error <= errors[0] * rho ** (k - 1) * 1.5 + 1e-12, (k, error, rho)


def test_fixed_point_adjoint_converges_at_documented_rate():
    problem = _problem(dim_y=8)
    oracles = Oracles(problem)
    x = _point(problem)
    y = problem.y_star(x)
    v_star = problem.v_star(x)
    b = oracles.grad_outer_y(x, y, None)
    step = 0.1
    eigenvalues = torch.linalg.eigvalsh(problem.A_mean64)
    rho = float(torch.max(torch.abs(1 - step * eigenvalues)))
    assert rho < 1
    errors = []
    for k in range(1, 41):
        v = fixed_point(lambda w: oracles.hvp_inner(x, y, w, None), b, maxiter=k, step=step)
        errors.append(float(torch.linalg.vector_norm(v - v_star)))
    norm = float(torch.linalg.vector_norm(v_star))
    for k, error in enumerate(errors, start=1):
        assert error <= rho ** k * norm * (1 + 1e-9) + 1e-13, (k, error, rho ** k * norm)
    # the bound is tight: the observed rate over the last 10 iterations is close to ρ
    observed = (errors[-1] / errors[-11]) ** 0.1
    assert 0.9 * rho <= observed <= rho * (1 + 1e-9), (observed, rho)


def test_aid_fp_step_reaches_exact_hypergradient():
    problem = _problem()
    x = _point(problem)
    coarse = _relative_error(_hypergradient("aid-fp", problem, x, n_inner_steps=5, n_linear_steps=2), problem, x)
    fine = _relative_error(_hypergradient("aid-fp", problem, x, n_inner_steps=60, n_linear_steps=60), problem, x)
    assert coarse > 1e-2 and fine < 1e-8, (coarse, fine)


def test_fmd_declares_its_dimension_dependent_cost():
    problem = _problem(dim_x=3, dim_y=4)
    solver = get_solver("fmd")(n_inner_steps=4)
    assert solver.skip(problem) is None
    assert "dim_x" not in vars(solver)  # skip has no side effect: the cost comes from the facts
    facts = Oracles(problem).facts
    assert facts.dim_x == 3 and facts.dim_y == 4
    assert solver.oracle_cost(facts) == {"grad_inner_full": 4, "hvp_full": 12, "cross_full": 12, "grad_outer_full": 1}
    wider = get_solver("fmd")(n_inner_steps=4).oracle_cost(Oracles(_problem(dim_x=5, dim_y=4)).facts)
    assert wider["hvp_full"] == 20 and wider["cross_full"] == 20


# -- the inner optimizer of the unrolled methods -------------------------------------------------
def _unrolled_value(problem, x: torch.Tensor, inner: str, n_steps: int, step: float) -> float:
    """f(x, y_N(x)) with y_N the full-batch inner path from y0: what ITD differentiates."""
    from benchopt_bilevel import inner as inner_lib
    from benchopt_bilevel.stochastic_inner import chebyshev_path, srkc_step

    oracles = Oracles(problem)
    if inner == "srkc":
        y = chebyshev_path(oracles, x, problem.y0(), n_steps, srkc_step(step))[0][-1]
    else:
        y = inner_lib.gradient_descent(oracles, x, problem.y0(), n_steps, step)
    return float(problem.outer(x, y, None))


@pytest.mark.parametrize("inner", ["sgd", "srkc"])
def test_itd_is_the_derivative_of_the_unrolled_inner_path(inner):
    """ITD's hypergradient is the exact derivative of x ↦ f(x, y_N(x)) through the chosen inner
    steps (the Chebyshev stages' three-term recurrence included): central differences agree."""
    problem = _problem(dim_x=3, dim_y=4)
    x = _point(problem)
    n_steps, step = 3, 0.1
    estimate = _hypergradient("itd", problem, x, n_inner_steps=n_steps, step_inner=step, inner=inner)
    eps = 1e-5
    differences = torch.tensor([
        (_unrolled_value(problem, x + eps * e, inner, n_steps, step)
         - _unrolled_value(problem, x - eps * e, inner, n_steps, step)) / (2 * eps)
        for e in torch.eye(problem.dim_x, dtype=torch.float64)], dtype=torch.float64)
    torch.testing.assert_close(estimate, differences, rtol=1e-7, atol=1e-9)
    # the SRKC path is a different function of x from gradient descent's: not the same derivative
    other = "sgd" if inner == "srkc" else "srkc"
    assert not torch.allclose(estimate, _hypergradient("itd", problem, x, n_inner_steps=n_steps, inner=other),
                              rtol=1e-3)


def test_srkc_steps_pay_off_on_ill_conditioned_inner_problems_only():
    """With the same 40 gradients, ITD through 8 SRKC steps (s = 5, h = step · ℓ_s / 2) against 40
    gradient steps: SRKC's slow directions move ℓ_s / 2 ≈ 19 times further per step, which wins
    when the inner problem is ill-conditioned (κ = 80), but its damped Chebyshev polynomial contracts
    the rest of the spectrum by only ≈ 1 / T_s(ω_0) ≈ 0.65 per step, against (1 − αλ)^5 for gradient
    descent, which loses by far on a well-conditioned one (κ = 1.6)."""
    ill = _problem(mu_inner=0.1, L_inner=8.0)
    x = _point(ill)
    gd = _relative_error(_hypergradient("itd", ill, x, n_inner_steps=40, step_inner=0.2), ill, x)
    rkc = _relative_error(_hypergradient("itd", ill, x, n_inner_steps=8, step_inner=0.2, inner="srkc"), ill, x)
    assert rkc < 0.2 * gd, (rkc, gd)  # measured: 5.6e-2 against 6.6e-1
    well = _problem()
    x = _point(well)
    gd = _relative_error(_hypergradient("itd", well, x, n_inner_steps=40), well, x)
    rkc = _relative_error(_hypergradient("itd", well, x, n_inner_steps=8, inner="srkc"), well, x)
    assert gd < 1e-6 * rkc, (gd, rkc)  # measured: 2e-13 against 8e-3


def test_truncated_srkc_with_full_window_is_itd_and_costs_every_stage():
    problem = _problem()
    x = _point(problem)
    full = _hypergradient("t-rhg", problem, x, n_inner_steps=4, n_backward_steps=4, inner="srkc")
    assert torch.equal(full, _hypergradient("itd", problem, x, n_inner_steps=4, inner="srkc"))
    solver = get_solver("t-rhg")(n_inner_steps=4, n_backward_steps=2, inner="srkc")
    oracles = Oracles(problem)
    with torch.no_grad():
        solver.step(oracles, solver.init(oracles, x, problem.y0(), rng.make_key(0)))
    assert dict(oracles.calls) == solver.oracle_cost(oracles.facts) == {
        "grad_inner_full": 20, "hvp_full": 10, "cross_full": 10, "grad_outer_full": 1}


@pytest.mark.parametrize("name", ["itd", "t-rhg"])
def test_unrolled_methods_reject_ai_sarah(name):
    from benchopt_bilevel.errors import UserError

    with pytest.raises(UserError, match="sgd, srkc"):
        get_solver(name)(inner="ai_sarah")
    assert any("AI-SARAH" in d for d in get_solver(name).deviations)
