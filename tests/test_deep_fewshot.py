"""Few-shot track on CPU: episodic sampler, iMAML and MAML meta-gradients, end-to-end runs."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from torch.func import grad

from benchopt_bilevel import rng
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import get_solver
from benchopt_bilevel.runner import Cell, RunConfig, run_cell

from conftest import build_problem

# Small networks on few images: one thread avoids thread contention on a shared CI machine.
TINY = dict(width=0.125, n_query=3, n_test_episodes=3, eval_inner_steps=2)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(dtype=torch.float32, **params):
    return build_problem("fewshot", dtype, **{**TINY, **params})


@pytest.fixture(scope="module")
def omniglot():
    torch.set_num_threads(1)
    return build(dataset="omniglot")


def test_splits_are_disjoint_and_cover_the_pool(omniglot):
    names = omniglot.class_names
    assert set(names["train"]).isdisjoint(names["validation"])
    assert set(names["train"]).isdisjoint(names["test"])
    assert set(names["validation"]).isdisjoint(names["test"])
    assert sum(omniglot.class_counts.values()) == 242  # every distinct Omniglot character, once
    assert omniglot.train_images.shape[1:] == (20, 1, 28, 28)



def _episodes():
    from benchopt_bilevel.problems._episodes import SALT, episode, episode_indices
    return SALT, episode, episode_indices


def test_episode_sampler(omniglot):
    SALT, episode, episode_indices = _episodes()
    n_classes = omniglot.class_counts["train"]
    seen = set()
    for i in range(300):
        classes, images = episode_indices(torch.tensor(i), n_classes, 20, 5, 1 + 15, SALT["train"])
        assert len(set(classes.tolist())) == 5 and 0 <= int(classes.min()) and int(classes.max()) < n_classes
        for row in images:  # support and query images of a class are distinct drawings
            assert len(set(row.tolist())) == 16
        seen.update(classes.tolist())
    assert seen == set(range(n_classes)), "300 episodes must visit every training class"
    first = episode(omniglot.train_images, torch.tensor(7), 5, 1, 15, SALT["train"], torch.float32)
    again = episode(omniglot.train_images, torch.tensor(7), 5, 1, 15, SALT["train"], torch.float32)
    other = episode(omniglot.train_images, torch.tensor(8), 5, 1, 15, SALT["train"], torch.float32)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])
    support, s_labels, query, q_labels = first
    assert support.shape == (5, 1, 28, 28) and query.shape == (75, 1, 28, 28)
    assert s_labels.tolist() == [0, 1, 2, 3, 4] and q_labels.tolist() == sorted(list(range(5)) * 15)
    assert 0.0 <= float(support.min()) and float(support.max()) <= 1.0 and float(support.mean()) > 0.0


def test_test_episodes_come_from_test_classes_only(omniglot):
    """A test episode's images are exactly images of test classes (no leakage from train)."""
    SALT, episode, _ = _episodes()
    support, _, query, _ = episode(omniglot.test_images, torch.tensor(3), 5, 1, 3, SALT["test"], torch.float32)
    train = omniglot.train_images.reshape(-1, 28 * 28).float() / 255
    for image in torch.cat([support, query]).reshape(-1, 28 * 28):
        assert not bool((train == image).all(1).any()), "a test image also appears among training images"


def _inner_solution(problem, x, batch, newton_steps=8):
    """y*(x) by Newton's method on the (strongly convex, small) ANIL inner problem."""
    y = problem.y_start(x, batch)
    g = grad(problem.inner, argnums=1)
    for _ in range(newton_steps):
        hessian = torch.func.jacrev(g, argnums=1)(x, y, batch)
        y = y - torch.linalg.solve(hessian, g(x, y, batch))
    return y


# BatchNorm over a handful of images makes these losses very curved: finite differences need a
# small step (float64 keeps the round-off near 1e-9 of the value).
EPS = 1e-7


def test_imaml_meta_gradient_matches_finite_differences():
    """ANIL form (strongly convex inner problem): iMAML's hypergradient with an exact inner
    solve and enough CG steps equals central finite differences of h(θ) = f(θ, y*(θ))."""
    from benchopt_bilevel.linalg import conjugate_gradient

    problem = build(torch.float64, dataset="synthetic", inner="anil", reg=1.0, k_shot=2)
    oracles = Oracles(problem)
    x, batch = problem.x0(), torch.tensor(5)
    y = _inner_solution(problem, x, batch)
    assert float(torch.linalg.vector_norm(oracles.grad_inner_y(x, y, batch))) < 1e-10
    grad_x_f, grad_y_f = oracles.grad_outer(x, y, batch)
    v = conjugate_gradient(lambda w: oracles.hvp_inner(x, y, w, batch), grad_y_f, maxiter=problem.dim_y,
                           stop_at_negative_curvature=True)
    hypergradient = grad_x_f - oracles.cross_inner(x, y, v, batch)

    direction = torch.randn(problem.dim_x, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def h(t):
        shifted = x + t * direction
        return problem.outer(shifted, _inner_solution(problem, shifted, batch), batch)

    finite_difference = float((h(EPS) - h(-EPS)) / (2 * EPS))
    assert float(hypergradient @ direction) == pytest.approx(finite_difference, rel=1e-4)
    # Too few CG steps leave a visible error: the test can tell.
    v_short = conjugate_gradient(lambda w: oracles.hvp_inner(x, y, w, batch), grad_y_f, maxiter=1,
                                 stop_at_negative_curvature=True)
    short = grad_x_f - oracles.cross_inner(x, y, v_short, batch)
    assert float(short @ direction) != pytest.approx(finite_difference, rel=1e-2)


def test_maml_meta_gradient_matches_the_unrolled_loss():
    """MAML (exact) differentiates y_T(θ) with y_0 = θ: equal to autograd through the loop and
    to finite differences of θ ↦ f(θ, y_T(θ)); first-order MAML differs from it."""
    problem = build(torch.float64, dataset="synthetic", reg=0.5, width=0.25, k_shot=2)
    options = dict(n_tasks=1, n_inner_steps=3, step_inner=0.2, outer_optimizer="sgd")
    exact_solver, first_order = get_solver("maml")(**options), get_solver("maml")(**options, first_order=True)
    oracles = Oracles(problem)
    key = rng.make_key(0)
    with torch.no_grad():
        exact = exact_solver.step(oracles, exact_solver.init(oracles, problem.x0(), problem.y0(), key))["hypergradient"]
        approx = first_order.step(oracles, first_order.init(oracles, problem.x0(), problem.y0(), key))["hypergradient"]
    batch = oracles.sample_inner(rng.split(key, 3)[1])

    def unrolled(theta):
        y = problem.y_start(theta, batch)
        for _ in range(3):
            y = y - 0.2 * grad(problem.inner, argnums=1)(theta, y, batch)
        return problem.outer(theta, y, batch)

    x = problem.x0()
    reference = grad(unrolled)(x)
    assert torch.allclose(exact, reference, rtol=1e-10, atol=1e-12)
    direction = torch.randn(problem.dim_x, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    finite_difference = float((unrolled(x + EPS * direction) - unrolled(x - EPS * direction)) / (2 * EPS))
    assert float(exact @ direction) == pytest.approx(finite_difference, rel=1e-4)
    assert float(torch.linalg.vector_norm(approx - exact)) > 1e-3 * float(torch.linalg.vector_norm(exact))


def test_implicit_stochastic_solvers_skip_with_a_reason(omniglot):
    for name in ("soba", "amigo", "aid-cg", "itd"):
        reason = get_solver(name)().skip(omniglot)
        assert reason and "episodic" in reason, name
    for name in ("imaml", "maml", "deq-implicit"):
        assert get_solver(name)().skip(omniglot) is None


@pytest.mark.parametrize("solver,problem_params", [
    ("maml", {"inner": "anil"}),
    ("maml", {"inner": "imaml", "reg": 0.0}),
])
def test_runs_end_to_end(solver, problem_params):
    params = {**TINY, "dataset": "omniglot", **problem_params}
    table = run_cell(Cell("fewshot", solver, params, {"n_tasks": 2, "n_inner_steps": 2}, seed=0),
                     RunConfig(max_steps=3, n_evals=2))
    final = table.iloc[-1]
    assert final["status"] == "ok", final["message"]
    assert final["step"] == 3 and 0.0 <= final["objective_test_accuracy"] <= 1.0
    assert final["objective_test_accuracy_ci95"] >= 0.0


def test_cli_run_imaml_on_omniglot(tmp_path):
    spec = "fewshot[" + ",".join(f"{k}={v}" for k, v in {**TINY, "dataset": "omniglot"}.items()) + "]"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "benchopt_bilevel.cli", "run", "-p", spec,
                             "-s", "imaml[n_tasks=2,n_inner_steps=2,n_cg_steps=2]", "--max-steps", "3",
                             "--n-evals", "2", "--threads", "1", "-o", str(tmp_path)], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    from benchopt_bilevel.results import load_results

    table = load_results(tmp_path)
    assert set(table["status"]) == {"ok"} and table["step"].max() == 3


def test_resnet12_widths_dropblock_and_flat_parameters():
    from benchopt_bilevel.nn import FlatModel
    from benchopt_bilevel.nn.resnet12 import DropBlock, resnet12

    full = FlatModel(lambda: resnet12(3, 5))
    assert [stage.convs[0].out_channels for stage in full.module.backbone.stages] == [64, 160, 320, 640]
    assert 12_000_000 < full.numel < 13_000_000  # the ~12M parameters of the papers' ResNet-12
    drop = DropBlock(0.1, 5)
    features = torch.ones(4, 8, 10, 10)
    key = rng.make_key(3)
    assert torch.equal(drop(features), features)  # no key: evaluation, identity
    assert torch.equal(drop(features, key), drop(features, key))
    dropped = drop(features, key)
    assert 0.0 < float((dropped == 0).to(torch.float32).mean()) < 0.3
    assert not torch.equal(dropped, drop(features, rng.make_key(4)))
    tiny = FlatModel(lambda: resnet12(1, 5, width=0.125))
    theta = tiny.init()
    images = torch.rand(5, 1, 28, 28)
    assert tiny(theta, images).shape == (5, 5)
    assert not torch.equal(tiny(theta, images, key=key), tiny(theta, images))  # DropBlock in training


def test_resnet12_problem_runs_with_maml():
    table = run_cell(Cell("fewshot", "maml", {**TINY, "dataset": "omniglot", "network": "resnet12"},
                          {"n_tasks": 1, "n_inner_steps": 1}, seed=0), RunConfig(max_steps=2, n_evals=2))
    final = table.iloc[-1]
    assert final["status"] == "ok", final["message"]
    assert final["step"] == 2
