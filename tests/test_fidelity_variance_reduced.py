"""Fidelity of the variance-reduced family (SABA, SRBA, MRBO, SUSTAIN, VRBO) beyond conformance.

- SABA and SRBA converge linearly on the strongly convex quadratic with constant steps (both
  papers prove it): log ‖x_k − x*‖² decreases with the same slope on two successive windows,
  far below the noise floor where SOBA stalls with the same steps.
- On one and the same state, the recursive / momentum directions have a much smaller variance
  over mini-batch draws than SOBA's plain stochastic direction, and SRBA's correction is
  unbiased given the past.
"""
from __future__ import annotations

import math

import pytest
import torch

from benchopt_bilevel import rng
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import solvers

from conftest import build_quadratic


def _distances(name, problem, n_steps, every, **params):
    """‖x_k − x*‖² every `every` steps of solver `name` (seed 0)."""
    solver = solvers()[name](**params)
    oracles = Oracles(problem)
    distances = {}
    with torch.no_grad():
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0))
        for k in range(1, n_steps + 1):
            state = solver.step(oracles, state)
            if k % every == 0:
                distances[k] = problem.evaluate(*solver.output(state))["distance_to_optimum"]
    return distances


def _slope(distances, start, end):
    return (math.log(distances[end]) - math.log(distances[start])) / (end - start)


@pytest.mark.parametrize("name,windows,params", [
    ("saba", ((50, 100), (100, 200)), {}),       # steps
    ("srba", ((2, 6), (6, 12)), {"period_frac": 1.0}),  # periods of 16 iterations (8 + 8 blocks)
])
def test_linear_convergence_with_constant_steps(name, windows, params):
    problem = build_quadratic()
    end = windows[1][1]
    distances = _distances(name, problem, end, windows[0][0] // 2 or 1, **params)
    first, second = (_slope(distances, *window) for window in windows)
    assert first < -0.05 and second < -0.05, (first, second)
    assert 0.5 < first / second < 2.0, f"not geometric: slopes {first:.3f} then {second:.3f}"
    assert distances[end] < 1e-8


def test_soba_stalls_at_its_noise_floor_with_the_same_steps():
    """The control: without variance reduction constant steps stop at a noise floor."""
    distances = _distances("soba", build_quadratic(), 400, 50, decay_inner=0.0, decay_outer=0.0)
    assert min(d for k, d in distances.items() if k >= 200) > 1e-5


def test_srba_with_period_one_is_deterministic_full_batch_descent():
    problem = build_quadratic()
    solver = solvers()["srba"](period_frac=1 / 16)  # 8 + 8 blocks: a period of one iteration
    oracles = Oracles(problem)
    with torch.no_grad():
        runs = []
        for seed in (0, 1):
            state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(seed))
            for _ in range(5):
                state = solver.step(oracles, state)
            runs.append(state["x"])
    assert torch.equal(runs[0], runs[1])
    assert set(oracles.calls) == {"grad_inner_full", "hvp_full", "cross_full", "grad_outer_full"}


# -- variance of the directions on one state ---------------------------------------------------------
N_DRAWS = 48


def _directions(name, state, problem, **params):
    """The x-direction a step of `name` ends with, for N_DRAWS keys on the same state."""
    solver = solvers()[name](**params)
    oracles = Oracles(problem)
    with torch.no_grad():
        return torch.stack([solver.step(oracles, dict(state, key=rng.make_key(seed)))["hypergradient"]
                            for seed in range(N_DRAWS)])


def _variance(directions):
    return float(torch.sum((directions - directions.mean(0)) ** 2, dim=1).mean())


@pytest.fixture(scope="module")
def common_state():
    """A state near the inner solution: x0, y*(x0), v*(x0), and a point one outer step further."""
    problem = build_quadratic()
    x = problem.x0()
    y, v, hypergradient = problem.y_star(x), problem.v_star(x), problem.hypergradient(x)
    x_next = x - 0.1 * hypergradient
    return problem, {"x": x, "y": y, "v": v, "hypergradient": hypergradient,
                     "x_next": x_next, "y_next": problem.y_star(x_next)}


def _state_for(name, common, t):
    c = common
    zero = torch.zeros_like(c["x"])
    if name in ("soba", "srba"):  # SOBA's sign convention: v tracks −[∇²_yy g]⁻¹ ∇_y f
        return {"x": c["x"], "y": c["y"], "v": -c["v"], "t": t, "hypergradient": zero}
    if name == "vrbo":
        return {"x": c["x"], "y": c["y"], "hypergradient": zero}
    # momentum methods: the estimate tracked the exact hypergradient at the previous point
    return {"x": c["x_next"], "y": c["y_next"], "x_prev": c["x"], "y_prev": c["y"], "w": c["hypergradient"],
            "u": torch.zeros_like(c["y"]), "t": t, "hypergradient": zero}


# 8 + 8 blocks: SRBA's period_frac 1/8 is a period of 2 iterations, VRBO's 1/16 one outer iteration.
VARIANCE_REDUCED = [("srba", {"period_frac": 1 / 8}), ("vrbo", {"period_frac": 1 / 16, "n_inner_steps": 1}),
                    ("mrbo", {}), ("sustain", {})]


@pytest.mark.parametrize("name,params", VARIANCE_REDUCED)
def test_variance_reduced_directions_beat_soba_on_the_same_state(common_state, name, params):
    problem, common = common_state
    t = torch.tensor(100.0, dtype=common["x"].dtype)  # momentum methods: a late step, η_t small
    soba = _variance(_directions("soba", _state_for("soba", common, t), problem))
    reduced = _variance(_directions(name, _state_for(name, common, t), problem, **params))
    assert reduced < 0.2 * soba, f"{name}: variance {reduced:.2e} vs SOBA's {soba:.2e}"


def test_momentum_without_history_has_soba_like_variance(common_state):
    """The control of the test above: at t = 0 MRBO's direction is a plain stochastic estimate."""
    problem, common = common_state
    t = torch.tensor(0.0, dtype=common["x"].dtype)
    soba = _variance(_directions("soba", _state_for("soba", common, t), problem))
    plain = _variance(_directions("mrbo", _state_for("mrbo", common, t), problem))
    assert plain > 0.5 * soba


def test_srba_correction_is_unbiased_given_the_past(common_state):
    """E[d⁺] = D(z⁺; full batch): the SARAH correction adds a zero-mean term."""
    problem, common = common_state
    state = _state_for("srba", common, torch.tensor(0.0, dtype=common["x"].dtype))
    directions = _directions("srba", state, problem, period_frac=1 / 8)
    oracles = Oracles(problem)
    rho = solvers()["srba"].Params().step_inner
    x, y, v = state["x"], state["y"], state["v"]
    d_y = oracles.grad_inner_y(x, y, None)
    hvp, cross = oracles.hvp_cross_inner(x, y, v, None)
    grad_x_f, grad_y_f = oracles.grad_outer(x, y, None)
    x1, y1, v1 = x - rho * (cross + grad_x_f), y - rho * d_y, v - rho * (hvp + grad_y_f)
    _, cross1 = oracles.hvp_cross_inner(x1, y1, v1, None)
    expected = cross1 + oracles.grad_outer_x(x1, y1, None)
    standard_error = math.sqrt(_variance(directions) / N_DRAWS)
    assert float(torch.linalg.vector_norm(directions.mean(0) - expected)) < 4 * standard_error
