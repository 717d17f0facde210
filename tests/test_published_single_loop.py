"""The published settings of the single-loop and variance-reduced solvers (SOBA, SABA, SRBA, VRBO,
MRBO, FSLA): the step convention shared with the reference benchmark, SOBA's decaying steps,
SABA's two memory initializations and their cost, and periods that follow the problem's size.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

from benchopt_bilevel import rng
from benchopt_bilevel.errors import UserError
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import solvers
from benchopt_bilevel.runner import Cell, RunConfig, run_cell

from conftest import WELL_CONDITIONED, build_quadratic

SOBA_DEFAULTS = solvers()["soba"].Params()


def _one_step(name, problem, t=None, seed=0, **params):
    """(state before, state after) of one step of `name` from its initial state, at step t."""
    solver = solvers()[name](**params)
    oracles = Oracles(problem)
    with torch.no_grad():
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(seed))
        if t is not None:
            state = dict(state, t=torch.tensor(float(t), dtype=state["x"].dtype))
        return state, solver.step(oracles, state)


def _norm(tensor):
    return float(torch.linalg.vector_norm(tensor))


# -- one step convention: outer step = step_inner / outer_ratio ---------------------------------------
# SRBA and VRBO with a period of one iteration (8 + 8 blocks on the fixture): x moves once per step.
SHORT_PERIOD = {"srba": {"period_frac": 1 / 16}, "vrbo": {"period_frac": 1 / 16, "n_inner_steps": 1}}


@pytest.mark.parametrize("name", ["soba", "saba", "srba", "vrbo", "mrbo", "fsla"])
def test_outer_ratio_divides_the_outer_step(name):
    problem = build_quadratic()
    moves = {}
    for ratio in (1.0, 4.0):
        before, after = _one_step(name, problem, outer_ratio=ratio, **SHORT_PERIOD.get(name, {}))
        moves[ratio] = after["x"] - before["x"]
    assert _norm(moves[1.0]) > 1e-3
    torch.testing.assert_close(moves[4.0], moves[1.0] / 4, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", ["soba", "saba", "srba", "vrbo", "mrbo", "fsla"])
def test_reference_names_and_parameter_map(name):
    cls = solvers()[name]
    assert cls.reference_name == name.upper()
    fields = {f.name for f in dataclasses.fields(cls.Params)}
    assert cls.reference_params["step_size"] == "step_inner"
    assert cls.reference_params["outer_ratio"] == "outer_ratio"
    assert set(cls.reference_params.values()) <= fields


# -- SOBA: decaying steps by default, constant steps as a variant --------------------------------------
def _soba_steps(**params):
    """(ρ_t / ρ_0, γ_t) for t = 0..4, measured from the moves of y and x on one state and batch."""
    problem = build_quadratic()
    ratios, gammas = [], []
    y_move_0 = None
    for t in range(5):
        before, after = _one_step("soba", problem, t=t, **params)  # same key: same batches for every t
        y_move = before["y"] - after["y"]  # ρ_t ∇_y g(x, y; B)
        y_move_0 = y_move if y_move_0 is None else y_move_0
        ratios.append(_norm(y_move) / _norm(y_move_0))
        gammas.append(_norm(before["x"] - after["x"]) / _norm(after["hypergradient"]))
    return ratios, gammas


def test_soba_default_steps_decay_as_in_the_paper_analysis():
    p = SOBA_DEFAULTS
    assert (p.decay_inner, p.decay_outer) == (0.4, 0.6)
    ratios, gammas = _soba_steps()
    for t in range(5):
        assert ratios[t] == pytest.approx((t + 1) ** -0.4, rel=1e-9)
        assert gammas[t] == pytest.approx(p.step_inner / p.outer_ratio / (t + 1) ** 0.6, rel=1e-9)
    assert gammas[4] < 0.4 * gammas[0]


def test_soba_constant_variant_does_not_decay():
    ratios, gammas = _soba_steps(decay_inner=0.0, decay_outer=0.0)
    assert ratios == pytest.approx([1.0] * 5, rel=1e-12)
    assert gammas == pytest.approx([SOBA_DEFAULTS.step_inner / SOBA_DEFAULTS.outer_ratio] * 5, rel=1e-9)


# -- SABA: memory initialization --------------------------------------------------------------------
def _saba_init(memory_init):
    problem = build_quadratic()
    solver = solvers()["saba"](memory_init=memory_init)
    oracles = Oracles(problem)
    with torch.no_grad():
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0))
    return problem, oracles, state


def test_saba_default_memory_starts_at_zero_without_oracle_calls():
    assert solvers()["saba"].Params().memory_init == "zero"
    problem, oracles, state = _saba_init("zero")
    assert sum(oracles.calls.values()) == 0
    for name in ("gy", "hvp", "cross", "fx", "fy"):
        assert not state[f"memory_{name}"].any() and not state[f"mean_{name}"].any()
    assert state["memory_gy"].shape[0] == problem.n_inner_batches
    assert state["memory_fx"].shape[0] == problem.n_outer_batches


def test_saba_full_memory_holds_every_block_at_the_start():
    problem, oracles, state = _saba_init("full")
    n_inner, n_outer = problem.n_inner_batches, problem.n_outer_batches
    assert dict(oracles.calls) == {"grad_inner": n_inner, "hvp": n_inner, "cross": n_inner, "grad_outer": n_outer}
    x, y = problem.x0(), problem.y0()
    with torch.no_grad():
        torch.testing.assert_close(state["mean_gy"], oracles.grad_inner_y(x, y, None))
        grad_x_f, grad_y_f = oracles.grad_outer(x, y, None)
    torch.testing.assert_close(state["mean_fx"], grad_x_f)
    torch.testing.assert_close(state["mean_fy"], grad_y_f)


@pytest.mark.parametrize("memory_init,init_calls", [("zero", 0), ("full", None)])
def test_saba_run_counts_the_initialization_it_pays(memory_init, init_calls):
    """The runner's first row (step 0) holds the calls of init: none from zero, a pass from full."""
    table = run_cell(Cell("quadratic", "saba", WELL_CONDITIONED, {"memory_init": memory_init}, seed=0),
                     RunConfig(max_steps=4, max_time=60, n_evals=2, dtype="float64"))
    first, last = table.iloc[0], table.iloc[-1]
    problem = build_quadratic()
    expected = 3 * problem.n_inner_batches + problem.n_outer_batches if init_calls is None else init_calls
    kinds = ("oracle_grad_inner", "oracle_hvp", "oracle_cross", "oracle_grad_outer")
    assert sum(first[k] for k in kinds) == expected
    assert sum(last[k] for k in kinds) == expected + 4 * 4  # 4 steps of 4 calls each


@pytest.mark.parametrize("memory_init", ["zero", "full"])
def test_saba_converges_linearly_from_either_memory(memory_init):
    problem = build_quadratic()
    solver = solvers()["saba"](memory_init=memory_init)
    oracles = Oracles(problem)
    with torch.no_grad():
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0))
        for _ in range(200):
            state = solver.step(oracles, state)
    assert problem.evaluate(*solver.output(state))["distance_to_optimum"] < 1e-8


def test_saba_rejects_an_unknown_memory_init():
    with pytest.raises(UserError, match="full, zero"):
        solvers()["saba"](memory_init="average")


# -- SRBA and VRBO: the period follows the problem's size --------------------------------------------------
SIZES = [(64, 64), (128, 64), (256, 256)]  # samples; blocks of 8: 8 + 8, 16 + 8, 32 + 32


@pytest.mark.parametrize("n_inner,n_outer", SIZES)
def test_srba_period_is_a_fraction_of_the_blocks(n_inner, n_outer):
    problem = build_quadratic(n_inner=n_inner, n_outer=n_outer)
    solver = solvers()["srba"]()
    oracles = Oracles(problem)
    q = int(0.5 * (n_inner // 8 + n_outer // 8))
    assert solver.period(oracles.facts) == q
    with torch.no_grad():
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0))
        solver.step(oracles, state)
    assert oracles.calls["grad_inner_full"] == 1
    assert oracles.calls["grad_inner"] == 2 * (q - 1)  # counted, not only declared


@pytest.mark.parametrize("n_inner,n_outer", SIZES)
def test_vrbo_period_is_a_fraction_of_the_blocks(n_inner, n_outer):
    problem = build_quadratic(n_inner=n_inner, n_outer=n_outer)
    solver = solvers()["vrbo"](n_inner_steps=2, n_neumann_steps=1)
    oracles = Oracles(problem)
    q = int(0.5 * (n_inner // 8 + n_outer // 8))
    assert solver.period(oracles.facts) == q
    with torch.no_grad():
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0))
        solver.step(oracles, state)
    assert oracles.calls["grad_inner_full"] == 1
    assert oracles.calls["grad_inner"] == 2 * q * 2


@pytest.mark.parametrize("name", ["srba", "vrbo"])
def test_a_tiny_period_fraction_is_one_iteration(name):
    assert solvers()[name](period_frac=1e-3).period(Oracles(build_quadratic()).facts) == 1


# -- MRBO and FSLA schedules ---------------------------------------------------------------------------
def test_fsla_momentum_follows_the_inner_step_unless_given():
    tied, free = solvers()["fsla"](step_inner=0.03), solvers()["fsla"](step_inner=0.03, momentum=0.2)
    for t in range(4):
        step = torch.tensor(float(t))
        assert float(tied.eta(step)) == pytest.approx(0.03 / (t + 1) ** 0.5)
        assert float(free.eta(step)) == pytest.approx(0.2 / (t + 1) ** 0.5)


def test_mrbo_schedules():
    solver = solvers()["mrbo"](step_inner=0.2, outer_ratio=2.0)
    for t in range(4):
        step = torch.tensor(float(t))
        assert float(solver.beta(step)) == pytest.approx(0.2 / (t + 1) ** (1 / 3))
        assert float(solver.alpha(step)) == pytest.approx(0.1 / (t + 1) ** (1 / 3))
        assert float(solver.eta(step)) == pytest.approx(0.5 / (t + 1) ** (2 / 3))
