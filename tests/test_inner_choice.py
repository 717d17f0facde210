"""Every solver with an `inner` parameter runs each inner optimizer it accepts.

Found through the registry (a solver that adds the field later is covered). With x held at x0
(reset after each step) and the solver's defaults:

- on problems whose mini-batches all equal the full batch (the quadratic without noise; logreg
  with one block), where a constant-step stochastic method has no noise ball, every choice brings
  the inner iterate to y*(x0);
- on mini-batches (the conformance quadratic, logreg in blocks of 32), AI-SARAH, variance reduced
  and with no step at all, still does, and every choice moves y differently from "sgd";
- a choice a solver rejects is a UserError naming it, and one of its `deviations` says why.

The inner iterate is whichever state entry of y's shape is closest to y*(x0) (y itself for most
methods; F2SA keeps it in z).
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

from benchopt_bilevel import rng
from benchopt_bilevel.errors import UserError
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import solvers
from benchopt_bilevel.stochastic_inner import INNER_OPTIMIZERS

from conftest import build_problem, build_quadratic

# Methods whose inner optimizer acts on an iterate the state does not keep: BOME recomputes ŷ
# from y at every step and moves y along ∇f + λ∇q, so y is not the optimizer's output
# (tests/test_published_first_order.py checks that its choice changes the iterates).
NO_INNER_ITERATE = {"bome"}
SOLVERS = sorted(name for name, cls in solvers().items()
                 if "inner" in {f.name for f in dataclasses.fields(cls.Params)} and name not in NO_INNER_ITERATE)
CHOICES = sorted(INNER_OPTIMIZERS)
DISPLAY = {"sgd": "SGD", "ai_sarah": "AI-SARAH", "srkc": "SRKC"}  # as deviations write them
N_STEPS = 30
TOLERANCE = 1e-8  # relative ‖y − y*(x0)‖² / ‖y0 − y*(x0)‖²


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Matrix products of a few hundred rows: threads only wait for each other on a busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def exact_batches():
    """Problems whose every mini-batch is the full batch."""
    return {"quadratic": build_quadratic(noise=0.0),
            "logreg": build_problem("logreg", n_train_max=640, val_fraction=0.5, batch_size=320)}


@pytest.fixture(scope="module")
def minibatches():
    return {"quadratic": build_quadratic(), "logreg": build_problem("logreg", n_train_max=640, batch_size=32)}


def _make(name: str, choice: str, **params):
    return solvers()[name](inner=choice, **params)


def _accepts(name: str, choice: str) -> bool:
    try:
        _make(name, choice)
    except UserError:
        return False
    return True


def _run(solver, problem, n_steps: int = N_STEPS) -> tuple[torch.Tensor, dict]:
    """(x0, state) after n_steps with x reset to x0 after each step: the inner problem at x0."""
    oracles = Oracles(problem)
    x0 = problem.x0()
    with torch.no_grad():
        state = solver.init(oracles, x0, problem.y0(), rng.make_key(0))
        for _ in range(n_steps):
            state = {**solver.step(oracles, state), "x": x0}
    return x0, state


def _y_like(problem, state) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor) and v.shape == problem.y0().shape}


def _inner_error(problem, x, state) -> float:
    y0, y_star = problem.y0(), problem.y_star(x)
    return min(float(torch.sum((y - y_star) ** 2) / torch.sum((y0 - y_star) ** 2))
               for y in _y_like(problem, state).values())


def _solve(solver, problem) -> float:
    """The inner error once below TOLERANCE (checked after each step), or after N_STEPS."""
    oracles = Oracles(problem)
    x0 = problem.x0()
    with torch.no_grad():
        state = solver.init(oracles, x0, problem.y0(), rng.make_key(0))
        for _ in range(N_STEPS):
            state = {**solver.step(oracles, state), "x": x0}
            error = _inner_error(problem, x0, state)
            if error < TOLERANCE:
                break
    return error


def test_the_inner_loop_solvers_offer_the_choice():
    assert {"amigo", "stocbio", "itd", "t-rhg", "aid-cg", "aid-fp", "aid-neumann"} <= set(SOLVERS)


@pytest.mark.parametrize("choice", CHOICES)
@pytest.mark.parametrize("name", SOLVERS)
def test_a_rejected_choice_is_a_user_error_and_a_deviation(name, choice):
    if _accepts(name, choice):
        return
    assert choice != "sgd", f"{name} rejects its default inner optimizer"
    with pytest.raises(UserError) as error:
        _make(name, choice)
    assert choice in str(error.value), str(error.value)
    assert any(DISPLAY[choice].lower() in d.lower() or choice in d for d in solvers()[name].deviations), \
        f"{name} rejects {choice} without saying why in its deviations"


@pytest.mark.parametrize("choice", CHOICES)
@pytest.mark.parametrize("name", SOLVERS)
def test_each_choice_solves_the_inner_problem(name, choice, exact_batches):
    if not _accepts(name, choice):
        pytest.skip(f"{name} rejects {choice}")
    for problem_name, problem in exact_batches.items():
        error = _solve(_make(name, choice), problem)
        assert error < TOLERANCE, f"{name}[inner={choice}] on {problem_name}: inner error {error:.2e}"


@pytest.mark.parametrize("name", SOLVERS)
def test_ai_sarah_solves_the_inner_problem_on_minibatches(name, minibatches):
    if not _accepts(name, "ai_sarah"):
        pytest.skip(f"{name} rejects ai_sarah")
    for problem_name, problem in minibatches.items():
        error = _solve(_make(name, "ai_sarah"), problem)
        assert error < TOLERANCE, f"{name}[inner=ai_sarah] on {problem_name}: inner error {error:.2e}"


@pytest.mark.parametrize("choice", [c for c in CHOICES if c != "sgd"])
@pytest.mark.parametrize("name", SOLVERS)
def test_each_choice_changes_the_iterates(name, choice, minibatches):
    if not _accepts(name, choice):
        pytest.skip(f"{name} rejects {choice}")
    for problem_name, problem in minibatches.items():
        with_sgd = _y_like(problem, _run(_make(name, "sgd"), problem, n_steps=1)[1])
        with_choice = _y_like(problem, _run(_make(name, choice), problem, n_steps=1)[1])
        assert any(not torch.allclose(with_choice[k], with_sgd[k], rtol=1e-6, atol=1e-9) for k in with_sgd), \
            f"{name}[inner={choice}] moves every y-shaped entry as sgd does on {problem_name}"


@pytest.mark.parametrize("name", SOLVERS)
def test_ai_sarah_takes_no_step(name, minibatches):
    """The solver's inner step does not reach AI-SARAH: its inner iterate is the same with that
    step 100 times larger (where the step also drives other updates, they may differ)."""
    if "step_inner" not in {f.name for f in dataclasses.fields(solvers()[name].Params)}:
        pytest.skip(f"{name} has no step_inner")
    if not _accepts(name, "ai_sarah"):
        pytest.skip(f"{name} rejects ai_sarah")
    problem = minibatches["quadratic"]
    solver = _make(name, "ai_sarah")
    x, state = _run(solver, problem, n_steps=1)
    _, large = _run(_make(name, "ai_sarah", step_inner=100 * solver.params.step_inner), problem, n_steps=1)
    assert any(torch.equal(state[k], large[k]) and not torch.equal(state[k], problem.y0())
               for k in state if state[k].shape == problem.y0().shape)


@pytest.mark.parametrize("name", SOLVERS)
def test_unknown_choice_is_a_user_error_naming_the_choices(name):
    with pytest.raises(UserError, match="sgd"):
        _make(name, "adam")
