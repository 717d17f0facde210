"""Oracles: hand-derived ones against torch.func, closed forms against finite differences."""
from __future__ import annotations

import pytest
import torch

from benchopt_bilevel.oracles import Oracles

from conftest import build_quadratic

ORACLE_CALLS = {
    "grad_inner_y": lambda o, x, y, v, u, b: o.grad_inner_y(x, y, b),
    "grad_inner": lambda o, x, y, v, u, b: o.grad_inner(x, y, b),
    "grad_outer": lambda o, x, y, v, u, b: o.grad_outer(x, y, b),
    "hvp_inner": lambda o, x, y, v, u, b: o.hvp_inner(x, y, v, b),
    "cross_inner": lambda o, x, y, v, u, b: o.cross_inner(x, y, v, b),
    "cross_t_inner": lambda o, x, y, v, u, b: o.cross_t_inner(x, y, u, b),
    "hvp_cross_inner": lambda o, x, y, v, u, b: o.hvp_cross_inner(x, y, v, b),
    "grad_hvp_cross_inner": lambda o, x, y, v, u, b: o.grad_hvp_cross_inner(x, y, v, b),
}


def _random_point(problem, seed=0):
    gen = torch.Generator().manual_seed(seed)
    draw = lambda d: torch.randn(d, generator=gen, dtype=torch.float64)  # noqa: E731
    return draw(problem.dim_x), draw(problem.dim_y), draw(problem.dim_y), draw(problem.dim_x)


@pytest.mark.parametrize("batch", [None, 0, 3])
@pytest.mark.parametrize("name", sorted(ORACLE_CALLS))
def test_hand_derived_oracles_match_autograd(name, batch):
    problem = build_quadratic(dim_x=4, dim_y=6)
    x, y, v, u = _random_point(problem)
    b = None if batch is None else torch.tensor(batch)
    fast = ORACLE_CALLS[name](Oracles(problem), x, y, v, u, b)
    reference = ORACLE_CALLS[name](Oracles(problem, autograd=True), x, y, v, u, b)
    fast = fast if isinstance(fast, tuple) else (fast,)
    reference = reference if isinstance(reference, tuple) else (reference,)
    for a, r in zip(fast, reference):
        assert a.shape == r.shape
        torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-10)


def test_calls_are_counted_by_kind():
    problem = build_quadratic()
    oracles = Oracles(problem)
    x, y, v, _ = _random_point(problem)
    b = torch.tensor(1)
    oracles.grad_inner_y(x, y, b)
    oracles.hvp_cross_inner(x, y, v, b)
    oracles.grad_outer(x, y, None)
    assert dict(oracles.calls) == {"grad_inner": 1, "hvp": 1, "cross": 1, "grad_outer_full": 1}
    assert oracles.total_calls() == 3 + problem.n_outer_batches


@pytest.mark.parametrize("autograd", [False, True], ids=["own", "fallback"])
def test_fused_inner_oracle_counts_three_calls(autograd):
    problem = build_quadratic(dim_x=4, dim_y=6)
    oracles = Oracles(problem, autograd=autograd)
    x, y, v, _ = _random_point(problem)
    b = torch.tensor(2)
    grad, hvp, cross = oracles.grad_hvp_cross_inner(x, y, v, b)
    assert dict(oracles.calls) == {"grad_inner": 1, "hvp": 1, "cross": 1}
    separate = Oracles(problem)
    torch.testing.assert_close(grad, separate.grad_inner_y(x, y, b), rtol=1e-12, atol=1e-12)
    for got, want in zip((hvp, cross), separate.hvp_cross_inner(x, y, v, b)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_minibatch_oracles_average_to_full_batch():
    problem = build_quadratic()
    oracles = Oracles(problem)
    x, y, v, _ = _random_point(problem)
    per_block = torch.stack([oracles.hvp_inner(x, y, v, torch.tensor(b)) for b in range(problem.n_inner_batches)])
    torch.testing.assert_close(per_block.mean(0), oracles.hvp_inner(x, y, v, None))


def test_closed_forms():
    problem = build_quadratic(dim_x=4, dim_y=6)
    oracles = Oracles(problem, autograd=True)
    x = _random_point(problem)[0]
    y_star = problem.y_star(x)
    # y* zeroes the inner gradient; v* solves the adjoint system; ∇h is the implicit formula.
    assert torch.linalg.vector_norm(oracles.grad_inner_y(x, y_star, None)) < 1e-10
    v_star = problem.v_star(x)
    grad_x_f, grad_y_f = oracles.grad_outer(x, y_star, None)
    torch.testing.assert_close(oracles.hvp_inner(x, y_star, v_star, None), grad_y_f)
    torch.testing.assert_close(problem.hypergradient(x), grad_x_f - oracles.cross_inner(x, y_star, v_star, None))
    # ∇h against central finite differences of the exact h.
    eps = 1e-6
    finite_differences = torch.stack([
        (problem.value(x + eps * e) - problem.value(x - eps * e)) / (2 * eps)
        for e in torch.eye(problem.dim_x, dtype=torch.float64)])
    torch.testing.assert_close(problem.hypergradient(x), finite_differences, rtol=1e-6, atol=1e-6)
    # x* is a minimizer: zero hypergradient, and h(x*) ≤ h(x).
    assert torch.linalg.vector_norm(problem.hypergradient(problem.x_star)) < 1e-9
    assert problem.value(problem.x_star) <= problem.value(x)


def test_evaluate_is_exact_at_the_solution():
    problem = build_quadratic()
    metrics = problem.evaluate(problem.x_star, problem.y_star(problem.x_star))
    assert abs(metrics["suboptimality"]) < 1e-10
    assert metrics["inner_distance"] < 1e-20
    assert problem.evaluate(problem.x0(), problem.y0())["relative_suboptimality"] == pytest.approx(1.0)


def test_quadratic_spectrum_is_controlled():
    problem = build_quadratic(mu_inner=0.3, L_inner=2.0, noise=0.0)
    eigenvalues = torch.linalg.eigvalsh(problem.A_mean64)
    assert eigenvalues.min() == pytest.approx(0.3) and eigenvalues.max() == pytest.approx(2.0)
    assert torch.linalg.eigvalsh(problem.hessian_h).min() >= problem.params.mu_outer - 1e-9


def test_problem_to_keeps_exact_answers_in_float64():
    problem = build_quadratic(dtype=torch.float32)
    assert problem.A.dtype == torch.float32 and problem.dtype == torch.float32
    assert problem.x_star.dtype == torch.float64


def test_problem_dtype_and_device_are_the_ones_to_set():
    problem = build_quadratic(dtype=torch.float32)
    assert problem.device == torch.device("cpu") and problem.x0().dtype == torch.float32
    problem.to("cpu", torch.float64)
    assert problem.dtype == torch.float64 and problem.A.dtype == torch.float64
    assert problem.x0().dtype == problem.y0().dtype == torch.float64


STEP = 0.1


def _states_the_gradient_step(problem):
    """The problem with its own map T: the gradient step, which the default map also is."""
    grad_g_y = torch.func.grad(problem.inner, argnums=1)
    problem.inner_map = lambda x, y, batch: y - STEP * grad_g_y(x, y, batch)
    return problem


@pytest.mark.parametrize("batch", [None, 2])
def test_a_stated_inner_map_and_the_default_gradient_step_agree(batch):
    """Any problem may state T: the fixed-point oracles then use it, at the same counted cost."""
    default, stated = build_quadratic(dim_x=4, dim_y=6), _states_the_gradient_step(build_quadratic(dim_x=4, dim_y=6))
    x, y, w, _ = _random_point(default)
    b = None if batch is None else torch.tensor(batch)
    values, counts = {}, {}
    for name, problem in (("default", default), ("stated", stated)):
        oracles = Oracles(problem)
        values[name] = (oracles.fixed_point_map(x, y, b, STEP), oracles.fixed_point_vjp_y(x, y, w, b, STEP),
                        *oracles.fixed_point_vjp(x, y, w, b, STEP))
        counts[name] = dict(oracles.calls)
    for got, want in zip(values["stated"], values["default"]):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    suffix = "" if batch is not None else "_full"
    assert counts["stated"] == counts["default"] == {"grad_inner" + suffix: 1, "hvp" + suffix: 2, "cross" + suffix: 1}
    # y*(x) is the fixed point of T, and ∂_y Tᵀ w alone is the y part of the full vjp.
    y_star = default.y_star(x)
    torch.testing.assert_close(Oracles(stated).fixed_point_map(x, y_star, None, STEP), y_star)
    torch.testing.assert_close(values["stated"][1], values["stated"][2])


def test_y_start_vjp_pulls_back_through_the_start_uncounted():
    problem = build_quadratic(dim_x=4, dim_y=6)
    x, _, w, _ = _random_point(problem)
    oracles = Oracles(problem)
    torch.testing.assert_close(oracles.y_start_vjp(x, None, w), torch.zeros_like(x))  # default: a constant
    M = torch.randn(6, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    problem.y_start = lambda x_, batch: torch.tanh(M @ x_)  # a start that moves with x
    jacobian = torch.func.jacrev(lambda x_: problem.y_start(x_, None))(x)
    torch.testing.assert_close(oracles.y_start_vjp(x, torch.tensor(1), w), jacobian.T @ w)
    assert not oracles.calls


def test_bad_problem_parameters_are_rejected():
    with pytest.raises(ValueError, match="batch_size"):
        build_quadratic(n_inner=64, batch_size=7)
