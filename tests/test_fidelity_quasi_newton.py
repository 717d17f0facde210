"""L-BFGS history (benchopt_bilevel.quasi_newton): its inverse estimate approaches A⁻¹ on a quadratic."""
from __future__ import annotations

import pytest
import torch

from benchopt_bilevel.quasi_newton import lbfgs_apply, lbfgs_init, lbfgs_update


def _quadratic(d=20, mu=0.1, L=1.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    A = (q * torch.linspace(mu, L, d, dtype=torch.float64)) @ q.T
    b = torch.randn(d, generator=gen, dtype=torch.float64)
    return A, b


def _minimize(A, b, memory, n_steps):
    """L-BFGS with exact line search on ½yᵀAy − bᵀy; returns the history and the iterate."""
    history = lbfgs_init(b, memory)
    y = torch.zeros_like(b)
    grad = A @ y - b
    for _ in range(n_steps):
        direction = -lbfgs_apply(history, grad)
        step = -torch.dot(grad, direction) / torch.dot(direction, A @ direction)
        y_new = y + step * direction
        grad_new = A @ y_new - b
        history = lbfgs_update(history, y_new - y, grad_new - grad)
        y, grad = y_new, grad_new
    return history, y


def _inverse_error(A, history, probe):
    exact = torch.linalg.solve(A, probe)
    return float(torch.linalg.vector_norm(lbfgs_apply(history, probe) - exact) / torch.linalg.vector_norm(exact))


def _two_loop(history, g, h0=1.0):
    """The textbook two-loop recursion (Nocedal & Wright, Algorithm 7.4), Python loops over pairs."""
    count, memory = int(history["count"]), history["rho"].shape[0]
    slots = [(count - 1 - j) % memory for j in range(min(count, memory))]  # newest first
    q, alphas = g.clone(), []
    for i in slots:
        alphas.append(history["rho"][i] * torch.dot(history["s"][i], q))
        q = q - alphas[-1] * history["dg"][i]
    if slots:
        s, y = history["s"][slots[0]], history["dg"][slots[0]]
        r = torch.dot(s, y) / torch.dot(y, y) * q
    else:
        r = h0 * q
    for i, alpha in reversed(list(zip(slots, alphas))):
        r = r + (alpha - history["rho"][i] * torch.dot(history["dg"][i], r)) * history["s"][i]
    return r


@pytest.mark.parametrize("n_steps", [0, 1, 3, 5, 9])
def test_compact_form_equals_the_two_loop_recursion(n_steps):
    # memory 5: below, at and beyond a full circular buffer
    A, b = _quadratic()
    history, _ = _minimize(A, b, memory=5, n_steps=n_steps)
    probe = torch.randn(20, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    torch.testing.assert_close(lbfgs_apply(history, probe, h0=0.3), _two_loop(history, probe, h0=0.3))


def test_empty_history_is_scaled_identity():
    g = torch.randn(7, dtype=torch.float64)
    torch.testing.assert_close(lbfgs_apply(lbfgs_init(g, 3), g, h0=0.25), 0.25 * g)


def test_secant_equation_holds_for_the_newest_pair():
    A, b = _quadratic()
    history, _ = _minimize(A, b, memory=5, n_steps=8)
    newest = int(history["count"] - 1) % 5
    torch.testing.assert_close(lbfgs_apply(history, history["dg"][newest]), history["s"][newest])


def test_full_memory_recovers_the_inverse_exactly():
    # With exact line search on a quadratic, BFGS has quadratic termination: H = A⁻¹ after d steps.
    A, b = _quadratic(d=12)
    history, y = _minimize(A, b, memory=12, n_steps=12)
    probe = torch.randn(12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert _inverse_error(A, history, probe) < 1e-6
    torch.testing.assert_close(y, torch.linalg.solve(A, b))


def test_more_memory_gives_a_better_inverse_estimate():
    A, b = _quadratic(d=30, mu=0.05)
    probe = torch.randn(30, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    errors = [_inverse_error(A, _minimize(A, b, memory=m, n_steps=25)[0], probe) for m in (2, 8, 25)]
    assert errors[2] < errors[1] < errors[0], errors
    assert errors[2] < 0.5 * errors[0], errors


def test_more_updates_give_a_better_inverse_estimate():
    A, b = _quadratic(d=20)
    probe = torch.randn(20, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    errors = [_inverse_error(A, _minimize(A, b, memory=20, n_steps=k)[0], probe) for k in (2, 10, 20)]
    assert errors[2] < errors[1] < errors[0], errors


def test_negative_curvature_pair_is_skipped():
    g = torch.randn(4, dtype=torch.float64)
    history = lbfgs_init(g, 2)
    history = lbfgs_update(history, torch.ones(4, dtype=torch.float64), -torch.ones(4, dtype=torch.float64))
    assert int(history["count"]) == 0
    torch.testing.assert_close(lbfgs_apply(history, g), g)


def test_round_off_pair_of_a_converged_iterate_is_skipped():
    # s at the round-off of the point it moves from: curvature ~1e-31 would give ρ ~ 1e31.
    y = torch.full((4,), 0.3, dtype=torch.float64)
    s = torch.tensor([1e-16, -1e-16, 2e-16, 0.0], dtype=torch.float64)
    history = lbfgs_init(y, 2)
    assert int(lbfgs_update(history, s, 5 * s)["count"]) == 1  # without a point: accepted
    assert int(lbfgs_update(history, s, 5 * s, point=y)["count"]) == 0
    assert int(lbfgs_update(history, 1e-6 * s / s.norm(), 5e-6 * s / s.norm(), point=y)["count"]) == 1


def test_circular_buffer_keeps_the_last_pairs():
    history = lbfgs_init(torch.zeros(3, dtype=torch.float64), 2)
    for k in range(1, 4):  # three pairs into two slots: slot 0 is overwritten by the third
        s = torch.full((3,), float(k), dtype=torch.float64)
        history = lbfgs_update(history, s, 2 * s)
    assert int(history["count"]) == 3
    assert history["s"][0, 0] == 3.0 and history["s"][1, 0] == 2.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_preserved(dtype):
    g = torch.randn(5, dtype=dtype)
    history = lbfgs_update(lbfgs_init(g, 3), g, 2 * g)
    assert lbfgs_apply(history, g).dtype == dtype


# -- SHINE and JFB: hypergradients from an approximate inverse ------------------------------------

from benchopt_bilevel import rng  # noqa: E402
from benchopt_bilevel.oracles import Oracles  # noqa: E402
from benchopt_bilevel.registry import solvers  # noqa: E402

from benchopt_bilevel.linalg import conjugate_gradient  # noqa: E402

from conftest import build_problem, build_quadratic  # noqa: E402

# An inner problem with condition number 10, where L-BFGS's inverse is visibly inexact.
ILL_CONDITIONED = dict(mu_inner=0.1, L_inner=1.0, dim_x=10, dim_y=20)
SHINE_MIN_COSINE = 0.99  # documented level of SHINE's hypergradient (T = 10, memory 10)


def _one_step_hypergradient(name, problem, **params):
    """(estimate, exact) of one step of solver `name` from x = x0 + 1, y = y0."""
    solver = solvers()[name](**params)
    oracles = Oracles(problem)
    x = problem.x0() + 1.0
    with torch.no_grad():
        state = solver.step(oracles, solver.init(oracles, x, problem.y0(), rng.make_key(0)))
    return state["hypergradient"], problem.hypergradient(x)


def _cosine(a, b):
    return float(torch.dot(a, b) / (torch.linalg.vector_norm(a) * torch.linalg.vector_norm(b)))


def _relative_error(a, b):
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def test_shine_hypergradient_is_accurate_and_refine_improves_it():
    problem = build_quadratic(**ILL_CONDITIONED)
    cosines, errors = [], []
    for refine in (0, 1, 3, 5):
        estimate, exact = _one_step_hypergradient("shine", problem, n_inner_steps=10, refine=refine)
        cosines.append(_cosine(estimate, exact))
        errors.append(_relative_error(estimate, exact))
    assert cosines[0] >= SHINE_MIN_COSINE, cosines
    assert errors[0] > 1e-3, "the shared inverse is an estimate: refine must have something to fix"
    assert all(later < earlier for earlier, later in zip(errors, errors[1:])), errors
    assert cosines[-1] > cosines[0], cosines


def test_shine_hypergradient_improves_with_memory():
    problem = build_quadratic(**ILL_CONDITIONED)
    errors = [_relative_error(*_one_step_hypergradient("shine", problem, n_inner_steps=10, memory=m))
              for m in (1, 4, 8)]
    assert errors[2] < errors[1] < errors[0], errors
    assert errors[2] < 0.5 * errors[0], errors


def _suboptimality_after(name, problem, n_steps, **params):
    """Relative suboptimality (h(x) − h*) / (h(x0) − h*) after n_steps from (x0, y0)."""
    solver = solvers()[name](**params)
    oracles = Oracles(problem)
    with torch.no_grad():
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0))
        for _ in range(n_steps):
            state = solver.step(oracles, state)
    return problem.evaluate(*solver.output(state))["relative_suboptimality"]


def test_shine_opa_removes_most_of_the_bias_of_the_shared_inverse():
    # Outer-problem awareness (the paper's Theorem 3): extra secant pairs along v, kept in the
    # history across steps (history="auto" keeps them with OPA, as the authors' OPA runs do), make
    # H ∇_y f accurate in the direction the hypergradient needs; plain SHINE's inexact inverse
    # (its history reset at every outer step) stalls near 1e-2 on this problem.
    problem = build_quadratic(**ILL_CONDITIONED)
    plain = _suboptimality_after("shine", problem, 60)
    opa = _suboptimality_after("shine", problem, 60, opa=True)
    assert plain > 5e-3, plain
    assert opa < 0.3 * plain, (opa, plain)


def test_shine_shared_inverse_beats_the_scaled_identity_of_jfb():
    problem = build_quadratic(**ILL_CONDITIONED)
    shine, exact = _one_step_hypergradient("shine", problem, n_inner_steps=10)
    jfb, _ = _one_step_hypergradient("jfb", problem, n_inner_steps=10, step_inner=1.0)
    assert _relative_error(shine, exact) < _relative_error(jfb, exact)


def test_jfb_is_a_descent_direction_on_a_well_conditioned_quadratic():
    estimate, exact = _one_step_hypergradient("jfb", build_quadratic())
    assert _cosine(estimate, exact) > 0.9


def test_jfb_is_the_first_neumann_term():
    # JFB's adjoint α∇_y f is AID-Neumann's series truncated to its first term.
    problem = build_quadratic(**ILL_CONDITIONED)
    oracles = Oracles(problem)
    x = problem.x0() + 1.0
    y = problem.y_star(x)
    with torch.no_grad():
        state = solvers()["jfb"](n_inner_steps=1, step_inner=0.5).step(
            oracles, {"x": x, "y": y, "key": rng.make_key(0), "hypergradient": torch.zeros_like(x)})
        y1 = y - 0.5 * oracles.grad_inner_y(x, y, None)
        grad_x_f, grad_y_f = oracles.grad_outer(x, y1, None)
        expected = grad_x_f - oracles.cross_inner(x, y1, 0.5 * grad_y_f, None)
    torch.testing.assert_close(state["hypergradient"], expected)


@pytest.mark.slow
def test_shine_step_compiles_once_and_matches_eager():
    # The L-BFGS history (circular buffer, masked updates) must trace without graph breaks on
    # tensor values: a compiled chunk gives the eager iterates and is never recompiled.
    import torch._dynamo

    from benchopt_bilevel.chunks import make_chunk

    problem = build_quadratic()
    oracles = Oracles(problem)
    solver = solvers()["shine"](n_inner_steps=2, memory=3)
    cpu = torch.device("cpu")
    torch._dynamo.reset()
    with torch.no_grad():
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(3, cpu))
        eager, compiled = make_chunk(solver, oracles, False, cpu), make_chunk(solver, oracles, True, cpu)
        expected, got = eager(dict(state), 4), compiled(dict(state), 4)
        expected = eager(expected, 4)
        with torch._dynamo.config.patch(error_on_recompile=True):
            got = compiled(got, 4)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("params", [dict(opa=True), dict(refine=2), dict(opa=True, refine=1, n_inner_steps=3),
                                    dict(line_search=3), dict(history="shared", line_search=2, opa=True)])
def test_shine_declared_cost_matches_counts_for_its_options(params):
    solver = solvers()["shine"](**params)
    problem = build_quadratic()
    oracles = Oracles(problem)
    with torch.no_grad():
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0))
        oracles.reset_counts()
        for _ in range(2):
            state = solver.step(oracles, state)
    assert dict(oracles.calls) == {k: 2 * v for k, v in solver.oracle_cost(oracles.facts).items()}


# -- SHINE's history: reset at every outer step (the authors' default) or shared across steps ------

def _error_after_a_jump(problem, history, x_warm, x, n_warm=5, **params):
    """Relative error of SHINE's hypergradient at x (against the exact implicit one at the y it
    reaches) after n_warm steps with x frozen at x_warm, its history then carried to x."""
    solver = solvers()["shine"](history=history, step_outer=1e-300, **params)
    oracles = Oracles(problem)
    with torch.no_grad():
        state = solver.init(oracles, x_warm, problem.y0(), rng.make_key(0))
        for _ in range(n_warm):
            state = solver.step(oracles, state)
        state = solver.step(oracles, {**state, "x": x})
        y = state["y"]
        grad_x_f, grad_y_f = oracles.grad_outer(x, y, None)
        v = conjugate_gradient(lambda w: oracles.hvp_inner(x, y, w, None), grad_y_f, maxiter=500, tol=1e-14)
        exact = grad_x_f - oracles.cross_inner(x, y, v, None)
    return _relative_error(state["hypergradient"], exact)


SHORT_SOLVES = dict(n_inner_steps=4, memory=20)  # 3 pairs per outer step: the history spans several


def test_default_history_is_reset_at_every_outer_step():
    solver = solvers()["shine"]()
    assert solver.history_mode == "reset" and solvers()["shine"](opa=True).history_mode == "shared"
    problem = build_quadratic(**ILL_CONDITIONED)
    oracles = Oracles(problem)
    with torch.no_grad():
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0))
        assert not any(key.startswith("history_") for key in state)
        later = solver.step(oracles, solver.step(oracles, state))
        # the estimate at a state depends on that state only, not on the pairs of earlier steps
        again = solver.step(oracles, {k: v for k, v in later.items()})
        fresh = solver.step(oracles, {**solver.init(oracles, later["x"], later["y"], later["key"])})
    torch.testing.assert_close(again["hypergradient"], fresh["hypergradient"], rtol=0, atol=0)


@pytest.mark.parametrize("delta", [-2.0, 2.0])
def test_shared_history_helps_where_the_hessian_does_not_depend_on_x(delta):
    # Quadratic: ∇²_yy g is the same at every x, so pairs of an earlier x stay exact secant pairs:
    # after a jump in x the shared history is as good as one built at the new x, and its many
    # pairs beat the 3 of a reset history.
    problem = build_quadratic(**ILL_CONDITIONED)
    x0, x = problem.x0(), problem.x0() + delta
    stale = _error_after_a_jump(problem, "shared", x0, x, **SHORT_SOLVES)
    fresh = _error_after_a_jump(problem, "shared", x, x, **SHORT_SOLVES)
    reset = _error_after_a_jump(problem, "reset", x0, x, **SHORT_SOLVES)
    assert 0.5 * fresh < stale < 2 * fresh, (stale, fresh)
    assert stale < 0.2 * reset, (stale, reset)


@pytest.mark.parametrize("delta", [-2.0, 2.0])
def test_shared_history_goes_stale_where_the_hessian_depends_on_x(delta):
    # Logistic regression: ∇²_yy g = data term + diag(e^x) changes with x, so pairs of an earlier
    # x describe another Hessian: after a jump the shared history is several times worse than one
    # built at the new x, and worse than the reset history, which holds only pairs of the new x.
    problem = build_problem("logreg", torch.float64, n_train_max=640, batch_size=32)
    x0, x = problem.x0(), problem.x0() + delta
    stale = _error_after_a_jump(problem, "shared", x0, x, **SHORT_SOLVES)
    fresh = _error_after_a_jump(problem, "shared", x, x, **SHORT_SOLVES)
    reset = _error_after_a_jump(problem, "reset", x0, x, **SHORT_SOLVES)
    assert stale > 5 * fresh, (stale, fresh)
    assert stale > 5 * reset, (stale, reset)


def test_line_search_backtracks_an_overlong_first_step():
    # Before any pair, the step is −initial_inverse_scale ∇_y g: with a scale far beyond 1/L the
    # unit step overshoots and g grows; the Armijo backtracking halves it until g decreases.
    problem = build_quadratic(**ILL_CONDITIONED)
    oracles = Oracles(problem)
    x = problem.x0()
    values = {}
    for trials in (0, 8):
        solver = solvers()["shine"](n_inner_steps=1, initial_inverse_scale=10.0, line_search=trials)
        with torch.no_grad():
            state = solver.step(oracles, solver.init(oracles, x, problem.y0(), rng.make_key(0)))
            values[trials] = float(oracles.value_inner(x, state["y"], None))
    start = float(oracles.value_inner(x, problem.y0(), None))
    assert values[0] > start > values[8], (values, start)
