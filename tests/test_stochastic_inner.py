"""The shared single-level stochastic inner optimizers: AI-SARAH and stochastic RKC."""
from __future__ import annotations

import pytest
import torch

from benchopt_bilevel import inner, rng
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.errors import UserError
from benchopt_bilevel.stochastic_inner import (INNER_OPTIMIZERS, ai_sarah, chebyshev_coefficients, chebyshev_path,
                                               minimize, oracle_cost, srkc, srkc_step, validate)

from conftest import build_quadratic


def _relative_error(problem, x, y0, y):
    y_star = problem.y_star(x)
    return float(torch.sum((y - y_star) ** 2) / torch.sum((y0 - y_star) ** 2))


def _run(optimizer, problem, n_steps, step, seed=0, **options):
    oracles = Oracles(problem)
    x, y0 = problem.x0(), problem.y0()
    with torch.no_grad():
        y, key = optimizer(oracles, x, y0, rng.make_key(seed), n_steps, step, **options)
    return _relative_error(problem, x, y0, y), oracles, y, key


def test_ai_sarah_converges_linearly_to_the_inner_minimizer_on_noisy_minibatches():
    problem = build_quadratic(noise=0.3)  # mini-batch Hessians differ by 30 %
    errors = [_run(ai_sarah, problem, 20, float("inf"), n_epochs=epochs)[0] for epochs in (1, 2, 4, 8)]
    assert errors[-1] < 1e-12
    for before, after in zip(errors, errors[1:]):
        assert after < 1e-1 * before  # every doubling of the epochs gains orders of magnitude


@pytest.mark.parametrize("scale", [0.1, 10.0])
def test_ai_sarah_needs_no_step_size(scale):
    """The step is read off the local curvature: rescaling g changes nothing in the outcome."""
    problem = build_quadratic(mu_inner=5.0 * scale, L_inner=8.0 * scale)
    error = _run(ai_sarah, problem, 20, float("inf"), n_epochs=6)[0]
    assert error < 1e-9
    # SGD with a step fitted to scale 1 diverges (scale 10) or crawls (scale 0.1): its step must be tuned to the scale.
    sgd_error = _run(inner.sgd, problem, 60, 0.1)[0]
    assert not sgd_error < 1e-6


def test_ai_sarah_step_cap_is_respected():
    problem = build_quadratic()
    capped = _run(ai_sarah, problem, 20, 1e-3, n_epochs=1)[0]
    free = _run(ai_sarah, problem, 20, float("inf"), n_epochs=1)[0]
    assert capped > 0.5 and free < 0.1  # 20 steps of 1e-3 on curvature <= 8 barely move y


def test_chebyshev_coefficients_are_consistent_and_bound_the_stability_interval():
    for n_stages, damping in [(1, 0.0), (3, 0.05), (5, 0.5), (10, 2.0)]:
        c = chebyshev_coefficients(n_stages, damping)
        for nu, kappa in zip(c["nu"][1:], c["kappa"][1:]):
            assert nu + kappa == pytest.approx(1.0)  # the stages are affine combinations
        bound = c["stability_bound"]
        assert 2.0 - 1e-9 <= bound <= 2.0 * n_stages**2 + 1e-9  # never worse than GD, at most 2 s²
        if damping <= 0.05:  # the small-damping asymptotics
            assert bound == pytest.approx((2 - 4 * damping / 3) * n_stages**2, rel=0.05)

        def amplification(z):  # one step on the scalar problem g(y) = ½ λ y², z = h λ
            previous, current = 1.0, 1.0
            for j in range(n_stages):
                if j == 0:
                    following = current - z * c["mu"][0] * current
                else:
                    following = c["nu"][j] * current + c["kappa"][j] * previous - z * c["mu"][j] * current
                previous, current = current, following
            return abs(current)

        assert amplification(1e-3) == pytest.approx(1 - 1e-3, rel=1e-6)  # consistent with the gradient flow
        assert max(amplification(bound * k / 50) for k in range(1, 50)) <= 1.0 + 1e-12
        assert amplification(1.05 * bound) > 1.0


def test_srkc_is_stable_where_gradient_descent_diverges_and_reaches_the_minimizer():
    problem = build_quadratic(noise=0.0, mu_inner=0.1, L_inner=8.0)  # condition number 80
    c = chebyshev_coefficients(5, 0.5)
    step = 0.9 * c["stability_bound"] / 8.0  # h L ≈ 17, far past gradient descent's limit 2
    error = _run(srkc, problem, 40, step, n_stages=5, damping=0.5)[0]
    gd_best = _run(inner.sgd, problem, 200, 2 / 8.1)[0]  # the same 200 gradients, optimal GD step
    gd_unstable = _run(inner.sgd, problem, 200, 3 / 8.0)[0]
    assert error < 1e-12
    assert error < 1e-4 * gd_best
    assert not gd_unstable < 1.0


def test_srkc_on_noisy_minibatches_reaches_a_small_neighbourhood():
    problem = build_quadratic(noise=0.1)
    assert _run(srkc, problem, 80, 0.1, n_stages=5)[0] < 1e-3


@pytest.mark.parametrize("name,options", [("sgd", {}), ("ai_sarah", {"n_epochs": 2}), ("srkc", {"n_stages": 4})])
def test_oracle_counts_and_determinism(name, options):
    problem = build_quadratic()
    step = 0.1
    _, oracles, y, key = _run(INNER_OPTIMIZERS[name], problem, 7, step, seed=3, **options)
    assert dict(oracles.calls) == oracle_cost(name, 7, **options)
    _, _, y_again, key_again = _run(INNER_OPTIMIZERS[name], problem, 7, step, seed=3, **options)
    assert torch.equal(y, y_again) and torch.equal(key, key_again)
    _, _, y_other, _ = _run(INNER_OPTIMIZERS[name], problem, 7, step, seed=4, **options)
    assert not torch.equal(y, y_other)


@pytest.mark.parametrize("name", sorted(INNER_OPTIMIZERS))
def test_dtype_preserved(name):
    problem = build_quadratic(dtype=torch.float32)
    _, _, y, _ = _run(INNER_OPTIMIZERS[name], problem, 3, 0.1)
    assert y.dtype == torch.float32 and torch.isfinite(y).all()


def test_unknown_optimizer_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown inner optimizer"):
        oracle_cost("adam", 3)


@pytest.mark.parametrize("name,step,options", [("sgd", 0.1, {}), ("ai_sarah", float("inf"), {}),
                                               ("srkc", 0.1, {"n_stages": 3})])
def test_inner_optimizers_drive_a_two_loop_bilevel_method(name, step, options):
    """Drop-in use: warm-started inner solve, then an implicit hypergradient step (AmIGO's shape)."""
    from benchopt_bilevel.hypergradient import hessian_matvec, implicit_hypergradient
    from benchopt_bilevel.linalg import conjugate_gradient

    problem = build_quadratic()
    oracles = Oracles(problem)
    x, y, key = problem.x0(), problem.y0(), rng.make_key(0)
    with torch.no_grad():
        for _ in range(40):
            y, key = INNER_OPTIMIZERS[name](oracles, x, y, key, 10, step, **options)
            grad_x_f, grad_y_f = oracles.grad_outer(x, y, None)
            v = conjugate_gradient(hessian_matvec(oracles, x, y, None), grad_y_f, maxiter=10)
            x = x - 0.3 * implicit_hypergradient(oracles, x, y, v, None, grad_x_f)
    metrics = problem.evaluate(x, y)
    assert metrics["relative_suboptimality"] < 1e-5
    if name == "ai_sarah":  # variance reduced: y reaches y*(x) itself, not a noise ball around it
        assert metrics["inner_distance"] < 1e-8
    else:
        assert metrics["inner_distance"] > 1e-6


# -- full batch, the solvers' entry point and its validation ------------------------------------------
@pytest.mark.parametrize("name", sorted(INNER_OPTIMIZERS))
@pytest.mark.parametrize("full_batch", [False, True])
def test_minimize_counts_what_oracle_cost_declares(name, full_batch):
    problem = build_quadratic()
    oracles = Oracles(problem)
    with torch.no_grad():
        y, key = minimize(name, oracles, problem.x0(), problem.y0(), rng.make_key(0), 6, 0.1, full_batch=full_batch)
    assert dict(oracles.calls) == oracle_cost(name, 6, full_batch=full_batch)
    assert all(kind.endswith("_full") for kind in oracles.calls) == full_batch or name == "ai_sarah"
    if full_batch:
        assert torch.equal(key, rng.make_key(0))  # no batch drawn


def test_full_batch_ai_sarah_is_the_recursion_on_identical_batches():
    """On the full batch the SARAH recursion u ← ∇g(y⁺; B) − ∇g(y; B) + u telescopes to ∇g(y⁺):
    where every mini-batch is the full batch, the two variants give the same iterates."""
    problem = build_quadratic(noise=0.0)
    x, y0 = problem.x0(), problem.y0()
    with torch.no_grad():
        minibatch, _ = ai_sarah(Oracles(problem), x, y0, rng.make_key(0), 12, n_epochs=2)
        full, _ = ai_sarah(Oracles(problem), x, y0, rng.make_key(0), 12, n_epochs=2, full_batch=True)
    torch.testing.assert_close(full, minibatch, rtol=1e-10, atol=1e-12)
    assert not torch.equal(full, y0)


def test_chebyshev_path_is_full_batch_srkc():
    problem = build_quadratic()
    oracles = Oracles(problem)
    x, y0 = problem.x0(), problem.y0()
    with torch.no_grad():
        points, stages = chebyshev_path(oracles, x, y0, 3, 0.4, n_stages=4)
        y, _ = srkc(oracles, x, y0, rng.make_key(0), 3, 0.4, n_stages=4, full_batch=True)
    assert len(points) == 13 and len(stages) == 12
    assert torch.equal(points[-1], y)
    assert all(b == 0.0 for _, b, _ in stages[::4])  # a step's first stage only sees its start


def test_minimize_gives_srkc_the_same_fraction_of_its_stability_interval():
    problem = build_quadratic()
    x, y0 = problem.x0(), problem.y0()
    bound = chebyshev_coefficients(5, 0.5)["stability_bound"]
    assert srkc_step(0.1) == pytest.approx(0.1 * bound / 2)
    with torch.no_grad():
        y, _ = minimize("srkc", Oracles(problem), x, y0, rng.make_key(0), 3, 0.1)
        direct, _ = srkc(Oracles(problem), x, y0, rng.make_key(0), 3, 0.1 * bound / 2)
        ai, _ = minimize("ai_sarah", Oracles(problem), x, y0, rng.make_key(0), 3, 1e-6)  # step ignored
        free, _ = ai_sarah(Oracles(problem), x, y0, rng.make_key(0), 3)
    torch.testing.assert_close(y, direct, rtol=1e-14, atol=1e-14)
    assert torch.equal(ai, free)


def test_validate_names_the_choices():
    validate("srkc", "amigo")
    with pytest.raises(UserError, match="amigo: unknown inner optimizer 'adam'; choose one of sgd, ai_sarah, srkc"):
        validate("adam", "amigo")
    with pytest.raises(UserError, match="choose one of sgd, srkc"):
        validate("ai_sarah", "itd", ("sgd", "srkc"))
