"""`linalg.map_rows`: R runs of one computation batched into one (ESJ's Q + 1 perturbed inner
runs), eager through vmap and exported through the graphs recorded by an eager step."""
from __future__ import annotations

import pytest
import torch

from benchopt_bilevel import fast, inner, linalg, rng
from benchopt_bilevel.fixtures import build_problem
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import get_solver
from benchopt_bilevel.solvers.esj import inner_solve, perturbed_differences, perturbed_differences_rows

from conftest import build_quadratic, eager_steps, start_state


def _points(dim_x: int, rows: int) -> torch.Tensor:
    return torch.randn(rows, dim_x, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@pytest.mark.parametrize("problem_name", ["quadratic", "logreg"])
def test_batched_gradient_descent_is_the_runs_one_by_one(problem_name):
    problem = (build_quadratic(dim_x=4, dim_y=6) if problem_name == "quadratic"
               else build_problem("logreg", torch.float64))
    oracles = Oracles(problem)
    xs = 0.1 * _points(problem.x0().numel(), 5).reshape(5, *problem.x0().shape)
    y0 = problem.y0()
    with torch.no_grad():
        batched = inner.gradient_descent_rows(oracles, xs, y0, 7, 0.1)
        one_by_one = torch.stack([inner.gradient_descent(oracles, x, y0, 7, 0.1) for x in xs])
    assert torch.allclose(batched, one_by_one, rtol=0, atol=1e-12)
    assert not torch.allclose(batched[0], batched[1])  # the rows are different runs
    # Each row's gradient is an oracle call: 5 rows x 7 steps, batched or not.
    assert oracles.calls["grad_inner_full"] == 2 * 5 * 7


def test_esj_batched_differences_equal_the_loop_of_perturbed_runs():
    problem = build_quadratic(dim_x=4, dim_y=6)
    oracles = Oracles(problem)
    x, y0 = problem.x0() + 0.3, problem.y0()
    directions = rng.normal(rng.make_key(2), (6, 4), torch.float64)
    key = rng.make_key(5)
    with torch.no_grad():
        looped = perturbed_differences(lambda x_: inner_solve(oracles, x_, y0, key, "sgd", 9, 0.1, True),
                                       x, directions, 0.1)
        batched = perturbed_differences_rows(oracles, x, y0, directions, 0.1, 9, 0.1)
    for a, b in zip(looped, batched):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)
    assert oracles.calls["grad_inner_full"] == 2 * (6 + 1) * 9


def test_map_rows_under_export_needs_a_recorded_graph():
    oracles = Oracles(build_quadratic(dim_x=4, dim_y=6))

    class Rows(torch.nn.Module):
        def forward(self, xs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return inner.gradient_descent_rows(oracles, xs, y, 3, 0.1)

    args = (_points(4, 3), torch.zeros(6, dtype=torch.float64))
    with pytest.raises(Exception, match=linalg.MISSING_ROW_GRAPH):
        torch.export.export(Rows(), args, strict=False)
    with linalg.row_graphs() as graphs:
        graphs.record(lambda: Rows()(*args))
        program = torch.export.export(Rows(), args, strict=False)
    assert "bmm" not in str(program.graph) and "_add_batch_dim" not in str(program.graph)
    assert torch.allclose(program.module()(*args), Rows()(*args), rtol=0, atol=1e-12)


def test_exported_esj_records_its_rows_once_and_matches_eager():
    """export_steps meets the unrecorded batched run, records it with one eager step (whose
    oracle calls are not counted), and the exported loop gives the eager iterates."""
    problem = build_quadratic(dim_x=4, dim_y=6)
    solver = get_solver("esj")(n_inner_steps=3, n_directions=3)
    state = start_state(solver, problem)
    oracles = Oracles(problem)
    chunk = fast.exported_steps(solver, oracles, state)
    assert sum(oracles.calls.values()) == 0
    expected = eager_steps(solver, problem, state, 3)
    got = chunk(state, 3)
    for k in expected:
        assert torch.allclose(got[k].double(), expected[k].double(), rtol=0, atol=1e-12), k


def test_is_mapped_only_inside_a_row_map():
    seen = []

    def record(row: torch.Tensor) -> torch.Tensor:
        seen.append(linalg.is_mapped(row))
        return row * 2

    out = linalg.map_rows("double", record, (0,), torch.ones(3, 2))
    assert seen == [True] and torch.equal(out, torch.full((3, 2), 2.0))
    assert not linalg.is_mapped(torch.ones(2))


def test_logreg_full_batch_layout_gives_the_block_values():
    """The full batch reads the rows through their transposed copy (problems/_logistic.py): its
    oracles are the mean of the blocks' (every block has the same size), batched or not."""
    problem = build_problem("logreg", torch.float64, n_train_max=640)
    x = 0.1 * _points(problem.dim_x, 1)[0]
    y = _points(problem.dim_y, 2)[1]
    blocks = torch.arange(problem.n_inner_batches)
    mean = torch.stack([problem.grad_inner_y(x, y, b) for b in blocks]).mean(0)
    assert torch.allclose(problem.grad_inner_y(x, y, None), mean, rtol=0, atol=1e-12)
    ys = torch.stack([y, 2 * y])
    batched = torch.func.vmap(problem.grad_inner_y, in_dims=(None, 0, None))(x, ys, None)
    assert torch.allclose(batched[1], problem.grad_inner_y(x, 2 * y, None), rtol=0, atol=1e-12)
