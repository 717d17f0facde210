"""The implicit hypergradient helper, its Hessian matvecs, the problem's static facts and the
initial state every solver starts from."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from benchopt_bilevel import rng
from benchopt_bilevel.facts import ProblemFacts
from benchopt_bilevel.hypergradient import hessian_matvec, implicit_hypergradient, sampled_hessian_matvec
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import solvers
from benchopt_bilevel.solver import Solver

from conftest import build_problem, build_quadratic


def test_exact_adjoint_gives_the_exact_hypergradient_for_one_cross_call():
    problem = build_quadratic()
    oracles = Oracles(problem)
    x = problem.x0() + 1.0
    y, v = problem.y_star(x), problem.v_star(x)
    grad_x_f = oracles.grad_outer_x(x, y, None)
    oracles.reset_counts()
    estimate = implicit_hypergradient(oracles, x, y, v, None, grad_x_f)
    assert dict(oracles.calls) == {"cross_full": 1}
    torch.testing.assert_close(estimate, problem.hypergradient(x), rtol=1e-9, atol=1e-12)
    # A wrong adjoint gives a wrong hypergradient: the helper uses v.
    assert not torch.allclose(implicit_hypergradient(oracles, x, y, 2 * v, None, grad_x_f), estimate)


def test_hessian_matvec_is_the_counted_hvp_on_its_batch():
    problem = build_quadratic()
    oracles = Oracles(problem)
    x, y = problem.x0() + 0.5, problem.y0() + 0.3
    w = torch.linspace(-1.0, 1.0, problem.dim_y, dtype=x.dtype)
    batch = torch.tensor(3)
    oracles.reset_counts()
    torch.testing.assert_close(hessian_matvec(oracles, x, y, batch)(w), oracles.hvp_inner(x, y, w, batch),
                               rtol=0, atol=0)
    assert dict(oracles.calls) == {"hvp": 2}


def test_sampled_matvec_draws_one_batch_from_the_key_for_every_point():
    problem = build_quadratic()
    oracles = Oracles(problem)
    points = [(problem.x0(), problem.y0()), (problem.x0() + 1.0, problem.y0() - 1.0)]
    ws = [torch.ones(problem.dim_y, dtype=torch.float64), torch.arange(problem.dim_y, dtype=torch.float64)]
    key = rng.make_key(7)
    batch = oracles.sample_inner(key)
    oracles.reset_counts()
    products = sampled_hessian_matvec(oracles, points)(ws, key)
    assert dict(oracles.calls) == {"hvp": 2}
    for (x, y), w, product in zip(points, ws, products):
        torch.testing.assert_close(product, oracles.hvp_inner(x, y, w, batch), rtol=0, atol=0)
    other = sampled_hessian_matvec(oracles, points)(ws, rng.make_key(8))
    assert not all(torch.equal(a, b) for a, b in zip(products, other))  # another key, another batch


@pytest.mark.parametrize("name, params", [("quadratic", {}), ("quadratic_box", {})])
def test_facts_are_the_problems_static_values(name, params):
    problem = build_problem(name, **params)
    facts = Oracles(problem).facts
    assert facts == ProblemFacts.of(problem)
    assert (facts.dim_x, facts.dim_y) == (problem.dim_x, problem.dim_y)
    assert (facts.n_inner_batches, facts.n_outer_batches) == (problem.n_inner_batches, problem.n_outer_batches)
    assert facts.constrained is problem.constrained and facts.episodic is problem.episodic
    assert facts.twice_differentiable is problem.twice_differentiable
    with pytest.raises(dataclasses.FrozenInstanceError):
        facts.dim_x = 0


def test_box_facts_say_constrained():
    assert Oracles(build_problem("quadratic_box")).facts.constrained
    assert not Oracles(build_quadratic()).facts.constrained


def test_initial_state_has_a_zero_hypergradient_and_the_extras():
    x, y, key = torch.ones(3), torch.zeros(4), rng.make_key(0)
    state = Solver.initial_state(x, y, key, v=torch.ones(4))
    assert set(state) == {"x", "y", "key", "hypergradient", "v"}
    assert torch.equal(state["hypergradient"], torch.zeros(3)) and state["hypergradient"].dtype == x.dtype
    assert state["x"] is x and state["y"] is y and state["key"] is key


# BiAdam starts from a sampled estimate; the black-box baselines form no hypergradient at all.
@pytest.mark.parametrize("name", sorted(set(solvers()) - {"biadam"} - {n for n, c in solvers().items() if c.host_side}))
def test_every_solver_starts_from_a_zero_hypergradient(name):
    problem = build_quadratic()
    solver = solvers()[name]()
    with torch.no_grad():
        state = solver.init(Oracles(problem), problem.x0(), problem.y0(), rng.make_key(0))
    assert torch.equal(state["hypergradient"], torch.zeros_like(problem.x0()))
