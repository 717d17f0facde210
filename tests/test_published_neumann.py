"""The random-length Neumann methods (BSA, TTSA, SUSTAIN, BiAdam) at their published cost, and
BSA's growing inner count (Ghadimi & Wang 2018).

- Algorithm 3 of Ghadimi & Wang draws p ~ U{0, …, Q−1} and multiplies p times: (Q−1)/2 Hessian-
  vector products on average, which `oracle_cost` declares; the calls counted are the drawn ones,
  so over many steps their mean is the declared figure and they vary from step to step.
- BSA's inner count t_k = ⌈T (k+1)^c⌉ grows with k (c = 1/2: t_k ∝ √(k+1)); the calls counted
  over K steps are `cumulative_oracle_cost(facts, K)`, and the step compiles to one graph that
  serves every count (torch's while_loop) with the eager iterates.
"""
from __future__ import annotations

import math

import pytest
import torch

from benchopt_bilevel import rng
from benchopt_bilevel.conformance import check_compiled_step
from benchopt_bilevel.fixtures import build_quadratic
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import get_solver

NEUMANN_SOLVERS = ("bsa", "ttsa", "sustain", "biadam")


def _run(solver, problem, n_steps: int, seed: int = 0):
    """Per-step oracle counts of `n_steps` eager steps (init excluded) and the final state."""
    oracles = Oracles(problem)
    per_step = []
    with torch.no_grad():
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(seed))
        for _ in range(n_steps):
            oracles.reset_counts()
            state = solver.step(oracles, state)
            per_step.append(dict(oracles.calls))
    return per_step, oracles, state


@pytest.mark.parametrize("name", NEUMANN_SOLVERS)
def test_hvp_calls_are_the_drawn_ones_and_average_the_declared_cost(name):
    params = {"inner_growth": 0.0} if name == "bsa" else {}  # a fixed inner count: one cost per step
    solver = get_solver(name)(**params)
    n_steps = 400
    per_step, oracles, _ = _run(solver, build_quadratic(), n_steps)
    declared = solver.oracle_cost(oracles.facts)
    q = solver.params.n_neumann_terms
    points = 2 if name == "sustain" else 1  # SUSTAIN takes the product at x and at x_prev
    assert declared["hvp"] == pytest.approx(points * (q - 1) / 2)
    hvps = [counts.get("hvp", 0) for counts in per_step]
    assert set(hvps) == {points * p for p in range(q)}  # every length 0 … Q−1 is drawn, and only those
    sd_of_mean = points * math.sqrt((q * q - 1) / 12) / math.sqrt(n_steps)
    assert abs(sum(hvps) / n_steps - declared["hvp"]) < 4 * sd_of_mean
    for kind, calls in declared.items():  # every other kind: exactly the declared calls, every step
        if kind != "hvp":
            assert all(counts.get(kind, 0) == calls for counts in per_step), kind


def test_bsa_inner_count_grows_like_the_square_root_of_k():
    solver = get_solver("bsa")()
    assert solver.params.inner_growth == 0.5
    t0 = solver.params.n_inner_steps
    per_step, oracles, state = _run(solver, build_quadratic(), 30)
    counts = [c["grad_inner"] for c in per_step]
    assert counts == [math.ceil(t0 * math.sqrt(k + 1)) for k in range(30)]
    assert counts[0] == t0 and counts[-1] > 5 * t0  # t_29 = ⌈10 √30⌉ = 55
    total = {kind: sum(c.get(kind, 0) for c in per_step) for kind in ("grad_inner", "cross", "grad_outer")}
    declared = solver.cumulative_oracle_cost(oracles.facts, 30)
    assert {kind: declared[kind] for kind in total} == total
    assert declared["hvp"] == pytest.approx(30 * (solver.params.n_neumann_terms - 1) / 2)
    assert bool(torch.isfinite(state["x"]).all())


def test_bsa_fixed_inner_count_is_kept_as_an_option():
    solver = get_solver("bsa")(inner_growth=0.0, n_inner_steps=7)
    per_step, oracles, _ = _run(solver, build_quadratic(), 6)
    assert [c["grad_inner"] for c in per_step] == [7] * 6
    assert solver.cumulative_oracle_cost(oracles.facts, 6)["grad_inner"] == 42


def test_bsa_takes_the_inner_optimizers():
    from benchopt_bilevel.errors import UserError

    per_step, _, _ = _run(get_solver("bsa")(inner="srkc"), build_quadratic(), 3)
    assert [c["grad_inner"] for c in per_step] == [5 * math.ceil(10 * math.sqrt(k + 1)) for k in range(3)]
    with pytest.raises(UserError, match="choose one of"):
        get_solver("bsa")(inner="adam")
    with pytest.raises(UserError, match="inner_growth=0"):
        get_solver("bsa")(inner="ai_sarah")  # its epochs cannot grow one step at a time
    get_solver("bsa")(inner="ai_sarah", inner_growth=0.0)


@pytest.mark.slow
def test_bsa_growing_count_compiles_to_one_graph_with_the_eager_iterates():
    """t_k = ⌈2 √(k+1)⌉ = 2, 3, 4, 4, 5, 5: every count through the one compiled graph."""
    import torch._dynamo

    torch._dynamo.reset()
    try:
        check_compiled_step(get_solver("bsa")(n_inner_steps=2, n_neumann_terms=4), calls=5)
    finally:
        torch._dynamo.reset()
