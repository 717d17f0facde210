"""The first-order and zeroth-order solvers as published: F2SA's schedules and independent batches,
BOME's barrier weight, ESJ's common batches across perturbed runs, and the inner optimizer choice."""
from __future__ import annotations

import pytest
import torch

from benchopt_bilevel import rng
from benchopt_bilevel.errors import UserError
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import get_solver
from benchopt_bilevel.solvers.bome import barrier_weight
from benchopt_bilevel.solvers.esj import inner_solve, jacobian_estimate, perturbed_differences
from benchopt_bilevel.stochastic_inner import INNER_OPTIMIZERS

from conftest import build_quadratic

INNER_SOLVERS = ("f2sa", "bome", "esj", "esj-s", "bsg1")


class RecordingOracles(Oracles):
    """Oracles that log (point, batch, value) of every first-order call, by name."""

    def __init__(self, problem):
        super().__init__(problem)
        self.log: dict[str, list] = {"grad_inner_y": [], "grad_inner_x": [], "grad_outer_y": [], "grad_outer_x": []}

    def _record(self, name, y, batch, value):
        self.log[name].append((y, None if batch is None else int(batch), value))
        return value

    def grad_inner_y(self, x, y, batch):
        return self._record("grad_inner_y", y, batch, super().grad_inner_y(x, y, batch))

    def grad_inner_x(self, x, y, batch):
        return self._record("grad_inner_x", y, batch, super().grad_inner_x(x, y, batch))

    def grad_outer_y(self, x, y, batch):
        return self._record("grad_outer_y", y, batch, super().grad_outer_y(x, y, batch))

    def grad_outer_x(self, x, y, batch):
        return self._record("grad_outer_x", y, batch, super().grad_outer_x(x, y, batch))


def _f2sa_steps_taken(solver, n_steps: int):
    """(γ_t, α_t, α_t λ_t, x's step) read off the iterates of `n_steps` F2SA steps with T = 1."""
    problem = build_quadratic()
    oracles = RecordingOracles(problem)
    state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0))
    taken = []
    for _ in range(n_steps):
        for calls in oracles.log.values():
            calls.clear()
        new = solver.step(oracles, state)
        (_, _, grad_z), (_, _, grad_g_y) = oracles.log["grad_inner_y"]  # z's step, then y's
        (_, _, grad_f_y), = oracles.log["grad_outer_y"]
        gamma = torch.linalg.lstsq((grad_z)[:, None], (state["z"] - new["z"])[:, None]).solution.item()
        # y − y⁺ = α ∇_y f + (α λ) ∇_y g: two unknowns, exact on the dim_y equations
        coefficients = torch.linalg.lstsq(torch.stack([grad_f_y, grad_g_y], 1), state["y"] - new["y"]).solution
        outer = torch.linalg.lstsq(new["hypergradient"][:, None], (state["x"] - new["x"])[:, None]).solution.item()
        taken.append((gamma, coefficients[0].item(), coefficients[1].item(), outer))
        state = new
    return taken


@pytest.mark.parametrize("outer_ratio", [1.0, 4.0])
def test_f2sa_steps_and_multiplier_follow_the_papers_schedule(outer_ratio):
    """t = 1..5: γ_t = γ t^(-4/7) on z, α_t = (γ/λ_0) t^(-5/7) on y, λ_t = λ_0 t^(1/7), x's step
    α_t / r (the paper's ξ α_t with ξ = 1/r)."""
    step, lambda0 = 0.05, 2.0
    solver = get_solver("f2sa")(step_inner=step, lambda0=lambda0, outer_ratio=outer_ratio, n_inner_steps=1)
    for t, (gamma, alpha, alpha_lambda, outer) in enumerate(_f2sa_steps_taken(solver, 5), start=1):
        lam = lambda0 * t ** (1 / 7)
        assert gamma == pytest.approx(step / t ** (4 / 7), rel=1e-9), t
        assert alpha == pytest.approx(step / lambda0 / t ** (5 / 7), rel=1e-9), t
        assert alpha_lambda / alpha == pytest.approx(lam, rel=1e-9), t
        assert outer == pytest.approx(alpha / outer_ratio, rel=1e-9), t


def test_f2sa_draws_independent_batches_for_z_y_and_the_two_x_terms():
    problem = build_quadratic()
    oracles = RecordingOracles(problem)
    solver = get_solver("f2sa")(n_inner_steps=10)
    state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(1))
    x_pairs = []
    for _ in range(5):
        for calls in oracles.log.values():
            calls.clear()
        state = solver.step(oracles, state)
        inner_batches = [batch for _, batch, _ in oracles.log["grad_inner_y"]]
        z_batches, y_batches = inner_batches[:10], inner_batches[10:]
        assert len(y_batches) == 10 and z_batches != y_batches
        # ∇_y f in y's steps on outer batches drawn apart from ∇_y g's inner ones
        assert [batch for _, batch, _ in oracles.log["grad_outer_y"]] != y_batches
        (_, at_y, _), (_, at_z, _) = oracles.log["grad_inner_x"]
        x_pairs.append((at_y, at_z))
    assert any(at_y != at_z for at_y, at_z in x_pairs), x_pairs  # one shared batch would always agree


def test_bome_barrier_weight_enforces_the_decrease_of_q():
    """⟨∇F + λ∇q, ∇q⟩ = max(η‖∇q‖², ⟨∇F, ∇q⟩): the step decreases q at rate at least φ."""
    generator = torch.Generator().manual_seed(0)
    eta = 0.5
    for _ in range(20):
        grad_f = tuple(torch.randn(n, generator=generator, dtype=torch.float64) for n in (3, 4))
        grad_q = tuple(torch.randn(n, generator=generator, dtype=torch.float64) for n in (3, 4))
        lam = barrier_weight(grad_f, grad_q, eta)
        norm2 = sum(float(torch.sum(q * q)) for q in grad_q)
        along = sum(float(torch.sum((f + lam * q) * q)) for f, q in zip(grad_f, grad_q))
        plain = sum(float(torch.sum(f * q)) for f, q in zip(grad_f, grad_q))
        assert float(lam) >= 0.0
        assert along == pytest.approx(max(eta * norm2, plain), rel=1e-12)
    zero = (torch.zeros(3, dtype=torch.float64), torch.zeros(4, dtype=torch.float64))
    assert float(barrier_weight(grad_f, zero, eta)) == 0.0  # ŷ = y: no constraint to push


def test_bome_moves_x_by_step_inner_over_outer_ratio_and_y_by_step_inner():
    problem = build_quadratic()
    moves = {}
    for ratio in (1.0, 4.0):
        solver = get_solver("bome")(outer_ratio=ratio)
        oracles = Oracles(problem)
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0))
        new = solver.step(oracles, state)
        moves[ratio] = (new["x"] - state["x"], new["y"] - state["y"])
        torch.testing.assert_close(new["x"] - state["x"], -(solver.params.step_inner / ratio) * new["hypergradient"])
    torch.testing.assert_close(moves[4.0][0], moves[1.0][0] / 4)
    torch.testing.assert_close(moves[4.0][1], moves[1.0][1])


def test_esj_defaults_draw_ten_directions():
    solver = get_solver("esj")()
    assert solver.params.n_directions == 10
    cost = solver.oracle_cost(Oracles(build_quadratic()).facts)
    assert cost == {"grad_inner_full": 11 * solver.params.n_inner_steps, "grad_outer_full": 1}


@pytest.mark.parametrize("name", ["sgd", "srkc"])
def test_esj_perturbed_runs_share_the_batches_of_a_stochastic_inner_optimizer(name):
    """On the quadratic the inner path is affine in x once the batches are fixed: with common
    batches, the difference quotient is the same for any μ; with batches drawn per run it is not."""
    problem = build_quadratic(dim_x=4, dim_y=6)
    oracles = Oracles(problem)
    x, y0 = problem.x0(), problem.y0()
    directions = rng.normal(rng.make_key(2), (3, 4), torch.float64)
    key = rng.make_key(7)

    def shared(x_):
        return inner_solve(oracles, x_, y0, key, name, 10, 0.02, full_batch=False)

    estimates = [jacobian_estimate(directions, perturbed_differences(shared, x, directions, mu)[1])
                 for mu in (1e-1, 1e-3)]
    torch.testing.assert_close(estimates[0], estimates[1], rtol=1e-6, atol=1e-8)
    draws = iter(rng.split(rng.make_key(8), 4))

    def fresh(x_):  # a new key per run: other batches
        return inner_solve(oracles, x_, y0, next(draws), name, 10, 0.02, full_batch=False)

    noisy = jacobian_estimate(directions, perturbed_differences(fresh, x, directions, 1e-1)[1])
    assert not torch.allclose(noisy, estimates[0], rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("solver_name", INNER_SOLVERS)
def test_each_inner_optimizer_changes_the_iterates(solver_name):
    problem = build_quadratic()
    outputs = {}
    for inner in INNER_OPTIMIZERS:
        solver = get_solver(solver_name)(inner=inner)
        oracles = Oracles(problem)
        with torch.no_grad():
            state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0))
            for _ in range(2):
                state = solver.step(oracles, state)
        assert torch.isfinite(state["x"]).all() and torch.isfinite(state["y"]).all(), inner
        declared = {k: 2 * v for k, v in solver.oracle_cost(oracles.facts).items() if v}
        assert dict(oracles.calls) == pytest.approx(declared), inner
        outputs[inner] = state["x"]
    names = list(outputs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not torch.allclose(outputs[a], outputs[b], rtol=1e-9, atol=1e-12), (solver_name, a, b)


@pytest.mark.parametrize("solver_name", INNER_SOLVERS)
def test_an_unknown_inner_optimizer_is_a_user_error(solver_name):
    with pytest.raises(UserError, match="sgd"):
        get_solver(solver_name)(inner="adam")


@pytest.mark.parametrize("solver_name,reference_name", [("f2sa", "F2SA"), ("bome", "BOME"), ("esj", "PZOBO")])
def test_reference_names_and_parameters(solver_name, reference_name):
    cls = get_solver(solver_name)
    assert cls.reference_name == reference_name
    fields = set(cls.Params.__dataclass_fields__)
    assert set(cls.reference_params.values()) <= fields
    assert cls.reference_params["step_size"] == "step_inner" and cls.reference_params["outer_ratio"] == "outer_ratio"
    assert cls.deviations and all(sentence.strip() for sentence in cls.deviations)
