"""LancBiO and SubBiO follow the authors' published algorithm (UCAS-YanYang/LancBiO,
Code/SyntheticProblem/solvers/): their loops are transcribed here with Python branches and growing
lists, and the registered solvers (fixed slots, masks, no branch on a tensor) must give the same
iterates. Covers what the authors' code does and a fixed-cycle version would not: the subspace
dimension m grows along the run (×growth every dim_freq steps up to dim_max) with a restart every
m steps, the steps decay as max(min, s / k^p), and SubBiO's η is a parameter of its own. Last,
the inner optimizer choice (`inner`) of these and of JFB, iMAML and MAML.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from benchopt_bilevel import rng
from benchopt_bilevel.errors import UserError
from benchopt_bilevel.linalg import conjugate_gradient
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import solvers

from conftest import build_quadratic

PROBLEM = dict(mu_inner=0.2, L_inner=1.0, dim_x=4, dim_y=12)  # subspaces stay below dim_y: no breakdown


def _setup():
    problem = build_quadratic(**PROBLEM)
    return problem, Oracles(problem)


def _step_sizes(p, k):
    theta = max(p.min_step_inner, p.step_inner / k ** p.decay_inner)
    lam = max(p.min_step_outer, p.step_outer / k ** p.decay_outer)
    return theta, lam


def _authors_lancbio(oracles, x, y, p, n_steps):
    """The authors' LancBiO loop (synthetic problem), v starting at 0; returns x, y, v and the
    subspace dimension used at each step."""
    v = torch.zeros_like(y)
    m, sizes = p.dim_start, []
    hvp = lambda w: oracles.hvp_inner(x, y, w, None)  # noqa: E731 - reads the current x, y
    for k in range(1, n_steps + 1):
        theta, lam = _step_sizes(p, k)
        for _ in range(p.n_inner_steps):
            y = y - theta * oracles.grad_inner_y(x, y, None)
        b = oracles.grad_outer_y(x, y, None)
        if k % p.dim_freq == p.dim_freq - 1:
            m = min(math.ceil(m * p.dim_growth), p.dim_max)
        if k % m == 1 or m == 1:  # restart
            v_bar = v
            w = hvp(v_bar)
            q = (b - w) / torch.linalg.vector_norm(b - w)
            Q, alphas, betas, q_last, beta = [], [], [], torch.zeros_like(q), 0.0
        r = b - w
        u = hvp(q) - beta * q_last
        alpha = torch.dot(q, u)
        Q.append(q)
        alphas.append(alpha)
        if len(Q) > 1:
            betas.append(beta)
        T = torch.diag(torch.stack(alphas))
        if betas:
            off = torch.stack([torch.as_tensor(b_, dtype=q.dtype) for b_ in betas])
            T = T + torch.diag(off, 1) + torch.diag(off, -1)
        basis = torch.stack(Q, dim=1)
        v = v_bar + basis @ torch.linalg.solve(T, basis.T @ r)
        omega = u - alpha * q
        beta = torch.linalg.vector_norm(omega)
        q_last, q = q, omega / beta
        sizes.append(len(Q))
        grad_x_f = oracles.grad_outer_x(x, y, None)
        x = x - lam * (grad_x_f - oracles.cross_inner(x, y, v, None))
    return x, y, v, sizes


def _authors_subbio(oracles, x, y, v, p, n_steps):
    """The authors' SubBiO loop from v (theirs starts at random: W is singular at v = 0):
    W = [b, v − η A v], v = W (WᵀAW)⁻¹ Wᵀ b."""
    eta = p.step_inner if p.eta is None else p.eta
    for k in range(1, n_steps + 1):
        theta, lam = _step_sizes(p, k)
        for _ in range(p.n_inner_steps):
            y = y - theta * oracles.grad_inner_y(x, y, None)
        b = oracles.grad_outer_y(x, y, None)
        W = torch.stack([b, v - eta * oracles.hvp_inner(x, y, v, None)], dim=1)
        AW = torch.stack([oracles.hvp_inner(x, y, W[:, i], None) for i in range(2)], dim=1)
        v = W @ torch.linalg.solve(W.T @ AW, W.T @ b)
        x = x - lam * (oracles.grad_outer_x(x, y, None) - oracles.cross_inner(x, y, v, None))
    return x, y, v


def _run(solver, oracles, problem, n_steps, v0=None):
    states = []
    with torch.no_grad():
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0))
        if v0 is not None:
            state = {**state, "v": v0}
        for _ in range(n_steps):
            state = solver.step(oracles, state)
            states.append(state)
    return states


# -- LancBiO --------------------------------------------------------------------------------------
GROWING = dict(dim_start=1, dim_growth=1.5, dim_freq=4, dim_max=6, step_inner=0.5, step_outer=0.2)


@pytest.mark.parametrize("decay", [dict(), dict(decay_inner=0.3, decay_outer=0.5, min_step_outer=0.05)])
def test_lancbio_iterates_are_the_authors(decay):
    problem, oracles = _setup()
    solver = solvers()["lancbio"](**GROWING, **decay)
    states = _run(solver, oracles, problem, 40)
    with torch.no_grad():
        x, y, v, sizes = _authors_lancbio(oracles, problem.x0(), problem.y0(), solver.params, 40)
    torch.testing.assert_close(states[-1]["x"], x, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(states[-1]["y"], y, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(states[-1]["v"], v, rtol=1e-8, atol=1e-10)
    assert [int(s["basis_j"]) for s in states] == sizes


def test_lancbio_subspace_grows_along_the_run():
    """Default schedule: m = 1 for the first 18 steps (a restart every step), then ×1.1 every 20
    steps; the basis gains one vector per step and restarts at k ≡ 1 (mod m), so a cycle that a
    growth of m overtakes can hold more than m vectors (7 here, with m capped at 6)."""
    problem, oracles = _setup()
    solver = solvers()["lancbio"](dim_max=6)
    states = _run(solver, oracles, problem, 120)
    dims = [int(s["dim"]) for s in states]
    sizes = [int(s["basis_j"]) for s in states]
    expected_dims, expected_sizes, m, size = [], [], 1, 0
    for k in range(1, 121):
        if k % 20 == 19:
            m = min(math.ceil(m * 1.1), 6)
        size = 1 if (k % m == 1 or m == 1) else size + 1
        expected_dims.append(m)
        expected_sizes.append(size)
    assert dims == expected_dims and sizes == expected_sizes
    assert set(sizes[:18]) == {1} and dims[-1] == 6
    assert max(sizes) == 7 and solver.slots == 7


def test_lancbio_with_a_fixed_dimension_is_restarted_lanczos():
    """x frozen (step ≈ 0) and y = y*(x): m outer steps of a fixed m are one Lanczos solve, i.e. m
    CG iterations; the next m warm-start CG from that anchor."""
    problem = build_quadratic(mu_inner=0.1, L_inner=1.0, dim_x=5, dim_y=20)
    oracles = Oracles(problem)
    x = problem.x0() + 1.0
    y = problem.y_star(x)
    solver = solvers()["lancbio"](step_outer=1e-300, dim_start=4, dim_max=4, dim_freq=10**9)
    with torch.no_grad():
        state = solver.init(oracles, x, y, rng.make_key(0))
        vs = []
        for _ in range(8):
            state = solver.step(oracles, state)
            vs.append(state["v"])
        matvec = lambda w: oracles.hvp_inner(x, y, w, None)  # noqa: E731
        b = oracles.grad_outer_y(x, y, None)
        torch.testing.assert_close(vs[3], conjugate_gradient(matvec, b, maxiter=4))
        torch.testing.assert_close(vs[7], conjugate_gradient(matvec, b, v0=vs[3], maxiter=4))


def test_lancbio_decaying_steps():
    """x moves by λ / k^b times the hypergradient at step k (and no less than λ_min)."""
    problem, oracles = _setup()
    solver = solvers()["lancbio"](step_outer=0.2, decay_outer=0.5, min_step_outer=0.03)
    states = _run(solver, oracles, problem, 60)
    for k in (1, 4, 25, 44, 60):
        before = states[k - 2]["x"] if k > 1 else problem.x0()
        moved = before - states[k - 1]["x"]
        torch.testing.assert_close(moved, max(0.03, 0.2 / math.sqrt(k)) * states[k - 1]["hypergradient"])


# -- SubBiO ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("params", [dict(), dict(eta=0.9), dict(decay_inner=0.5, decay_outer=0.3, eta=0.3)])
def test_subbio_iterates_are_the_authors(params):
    problem, oracles = _setup()
    solver = solvers()["subbio"](step_inner=0.5, step_outer=0.2, **params)
    v0 = torch.randn(problem.y0().shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    states = _run(solver, oracles, problem, 30, v0)
    with torch.no_grad():
        x, y, v = _authors_subbio(oracles, problem.x0(), problem.y0(), v0, solver.params, 30)
    torch.testing.assert_close(states[-1]["x"], x, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(states[-1]["v"], v, rtol=1e-8, atol=1e-10)


def test_subbio_eta_is_not_the_decayed_inner_step():
    """η defaults to the initial inner step, as the authors' code: with θ decaying, an explicit
    η = θ gives the same run, and another η another v."""
    problem, oracles = _setup()
    base = dict(step_inner=0.5, step_outer=0.2, decay_inner=0.5)
    runs = {eta: _run(solvers()["subbio"](**base, eta=eta), oracles, problem, 5)[-1]["v"]
            for eta in (None, 0.5, 0.1)}
    torch.testing.assert_close(runs[None], runs[0.5], rtol=0, atol=0)
    assert float(torch.linalg.vector_norm(runs[0.1] - runs[0.5])) > 1e-6


# -- inner optimizers ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["lancbio", "subbio", "jfb", "imaml"])
def test_inner_optimizer_choice(name):
    problem, oracles = _setup()
    with pytest.raises(UserError, match="ai_sarah"):
        solvers()[name](inner="adam")
    for inner in ("ai_sarah", "srkc"):
        solver = solvers()[name](inner=inner, step_inner=0.2)
        oracles.reset_counts()
        states = _run(solver, oracles, problem, 3)
        assert all(bool(torch.isfinite(s["x"]).all()) for s in states)
        declared = {k: 3 * c for k, c in solver.oracle_cost(oracles.facts).items()}
        assert dict(oracles.calls) == pytest.approx(declared)


def test_imaml_stochastic_inner_optimizers_skip_episodic_problems():
    episodic = SimpleNamespace(name="fewshot", episodic=True, constrained=False, twice_differentiable=True)
    assert solvers()["imaml"]().skip(episodic) is None
    reason = solvers()["imaml"](inner="srkc").skip(episodic)
    assert reason and "episodic" in reason and "inner=sgd" in reason


def test_maml_accepts_only_sgd():
    assert solvers()["maml"](inner="sgd").params.inner == "sgd"
    for inner in ("ai_sarah", "srkc"):
        with pytest.raises(UserError, match="differentiates through"):
            solvers()["maml"](inner=inner)
