"""Shared fixtures: small problems that build in milliseconds."""
from __future__ import annotations

import os

import pytest
import torch

# One definition of the small problems, shared with the package's conformance rules.
from benchopt_bilevel.fixtures import WELL_CONDITIONED, build_problem, build_quadratic  # noqa: F401

ORACLE_NAMES = ("grad_inner_y", "grad_inner", "grad_outer", "hvp_inner", "cross_inner", "cross_t_inner",
                "hvp_cross_inner", "grad_hvp_cross_inner")


def assert_oracles_match_autograd(problem, x, y, v, u, batch, names=ORACLE_NAMES, rtol=1e-10, atol=1e-12):
    """Every hand-derived oracle of `problem` equals the torch.func reference at one point."""
    from benchopt_bilevel.oracles import Oracles

    hand, auto = Oracles(problem), Oracles(problem, autograd=True)
    arguments = {"grad_inner_y": (x, y), "grad_inner": (x, y), "grad_outer": (x, y), "hvp_inner": (x, y, v),
                 "cross_inner": (x, y, v), "cross_t_inner": (x, y, u), "hvp_cross_inner": (x, y, v),
                 "grad_hvp_cross_inner": (x, y, v)}
    for name in names:
        got, want = getattr(hand, name)(*arguments[name], batch), getattr(auto, name)(*arguments[name], batch)
        got, want = (got, want) if isinstance(got, tuple) else ((got,), (want,))
        assert len(got) == len(want), name
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=name)


def assert_hypergradient_matches_finite_differences(problem, x, eps=1e-4, rtol=1e-5, atol=1e-9):
    """problem.hypergradient(x) against float64 central differences of problem.value."""
    exact = problem.hypergradient(x).clone()
    fd = torch.stack([(problem.value(x + eps * e) - problem.value(x - eps * e)) / (2 * eps)
                      for e in torch.eye(len(x), dtype=torch.float64)])
    assert float(torch.linalg.vector_norm(exact)) > 1e-6  # a non-trivial check
    torch.testing.assert_close(exact, fd, rtol=rtol, atol=atol)


@pytest.fixture(scope="session", autouse=True)
def session_build_cache(tmp_path_factory):
    """Fast-path builds of this session go to a directory of the session (subprocesses inherit
    it), never to the user's cache: a test never reuses a build from an earlier session."""
    from benchopt_bilevel.build_cache import CACHE_ENV

    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("build-cache"))
    yield
    if previous is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = previous


@pytest.fixture
def quadratic():
    return build_quadratic()


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


def start_state(solver, problem, seed: int = 3) -> dict:
    """The solver's initial state on `problem`, each entry its own tensor (as a runner's state:
    the fast path's export would merge entries that share one tensor)."""
    from benchopt_bilevel import rng
    from benchopt_bilevel.oracles import Oracles

    with torch.no_grad():
        state = solver.init(Oracles(problem), problem.x0(), problem.y0(), rng.make_key(seed))
    return {k: v.clone() for k, v in state.items()}


def eager_steps(solver, problem, state: dict, n_steps: int) -> dict:
    """`n_steps` eager steps of the solver from `state` (the reference the fast path must match)."""
    from benchopt_bilevel.oracles import Oracles

    oracles = Oracles(problem)
    with torch.no_grad():
        for _ in range(n_steps):
            state = solver.step(oracles, state)
    return state
