"""The hypergradient-quality track: errors against the exact ∇h, costs, resume, the CLI."""
from __future__ import annotations

import math

import pandas as pd
from click.testing import CliRunner

from benchopt_bilevel import hypergradients as track
from benchopt_bilevel.cli import main
from benchopt_bilevel.cli_hypergradients import load_track

# Strong coupling (L_cross) so that the implicit term matters in ∇h: a cheap estimator then shows.
PROBLEM = "quadratic[n_inner=32,n_outer=32,dim_x=4,dim_y=6,batch_size=8,mu_inner=0.5,L_inner=4.0,L_cross=2.0]"


def test_errors_fall_with_the_budget_and_the_exact_solve_is_exact():
    sweeps = [track.sweep_by_label("aid-cg"), track.sweep_by_label("itd"), track.sweep_by_label("jfb")]
    table = track.run_track([PROBLEM], sweeps)
    at_exact = table[(table["x_point"] == "x0") & (table["y_point"] == "y*(x)")]
    cg = at_exact[at_exact["solver"] == "aid-cg"].sort_values("budget")
    # CG on a 6-dimensional system is exact after 6 iterations; before that its error falls.
    assert cg["relative_error"].iloc[-1] < 1e-10
    assert cg["relative_error"].iloc[0] > 1e3 * cg["relative_error"].iloc[-1]
    assert cg["oracle_calls"].is_monotonic_increasing
    itd = at_exact[at_exact["solver"] == "itd"].sort_values("budget")
    # Unrolling contracts like the inner gradient steps, (1 − α μ)^T = 0.95^T with the default α.
    assert itd["relative_error"].is_monotonic_decreasing
    assert itd["relative_error"].iloc[-1] < 0.1 * itd["relative_error"].iloc[0]
    # JFB drops the inverse: a fixed, visible bias that no budget removes.
    jfb = at_exact[at_exact["solver"] == "jfb"]["relative_error"].iloc[0]
    assert jfb > 1e-2
    assert (table["step_time"] > 0).all() and table["relative_error"].map(math.isfinite).all()


def test_cheapest_and_pareto_on_a_hand_made_table():
    rows = [("a", 1, 10, 1e-1), ("a", 2, 20, 1e-3), ("a", 4, 40, 1e-5), ("b", 1, 15, 1e-3), ("b", 2, 30, 1e-6)]
    table = pd.DataFrame([{"problem": "p", "x_point": "x0", "y_point": "y*", "estimator": e, "budget": b,
                           "oracle_calls": c, "relative_error": r, "step_time": c * 1e-6, "seed": 0}
                          for e, b, c, r in rows])
    best = track.cheapest(table).set_index("threshold")
    assert best.loc[1e-2, "estimator"] == "b" and best.loc[1e-2, "oracle_calls"] == 15
    assert best.loc[1e-4, "estimator"] == "b" and best.loc[1e-4, "oracle_calls"] == 30
    front = track.pareto(table)
    assert list(front["oracle_calls"]) == [10, 15, 30]


def test_the_command_writes_resumable_sweeps_and_a_plot(tmp_path):
    runner = CliRunner()
    args = ["hypergradients", "-p", PROBLEM, "-s", "aid-neumann", "-s", "bsg1", "-o", str(tmp_path)]
    first = runner.invoke(main, args, env={"COLUMNS": "160"})
    assert first.exit_code == 0, first.output
    assert "cheapest estimator" in first.output
    files = sorted((tmp_path / "hypergradients").glob("*.parquet"))
    assert len(files) == 2 and list((tmp_path / "hypergradients").glob("pareto-*.svg"))
    mtimes = [f.stat().st_mtime_ns for f in files]
    second = runner.invoke(main, args, env={"COLUMNS": "160"})
    assert second.exit_code == 0 and "already measured" in second.output
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    assert set(load_track(tmp_path)["solver"]) == {"aid-neumann", "bsg1"}


def test_a_problem_without_the_exact_hypergradient_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(main, ["hypergradients", "-p", "hypercleaning", "-s", "jfb", "-o", str(tmp_path)])
    assert result.exit_code != 0
    assert "no exact hypergradient" in result.output


def test_deq_exact_hypergradient_matches_finite_differences_of_h():
    """deq's exact ∇h (float64 equilibrium, dense adjoint solve) against central differences of
    h(x) = f(x, z*(x)) along 2 random directions, on the tiny configuration with one batch.
    The step 1e-5 is small enough for the equilibrium to stay on its branch (at 1e-4 the
    differences already move by a few percent); the tolerance, 1e-4 relative, is loose against
    the truncation and rounding of float64 central differences at that step."""
    import time

    import torch

    from benchopt_bilevel.problems.deq import DEQ, DEQParams

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny network: threads only add overhead
    try:
        params = DEQParams(dataset="synthetic", config="tiny", image_size=8, batch_size=2, n_train=2, n_test=4)
        problem = DEQ(params, torch.Generator().manual_seed(0)).to("cpu", torch.float32)
        x = problem.x0().to(torch.float64)
        start = time.perf_counter()
        gradient = problem.hypergradient(x)
        seconds = time.perf_counter() - start
        assert torch.isfinite(gradient).all() and float(gradient.norm()) > 0
        directions = torch.randn(2, x.numel(), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        for d in directions / directions.norm(dim=1, keepdim=True):
            eps = 1e-5
            finite_difference = float(problem.value(x + eps * d) - problem.value(x - eps * d)) / (2 * eps)
            assert abs(finite_difference - float(gradient @ d)) <= 1e-4 * abs(float(gradient @ d)) + 1e-8
    finally:
        torch.set_num_threads(threads)
    print(f"deq exact hypergradient: {seconds:.2f} s")
    assert seconds < 30  # a few seconds on an idle core; generous for a shared machine


# The deq-shine-jfb claim's problem: one batch of 2 training images, so that ∇h is that batch's.
DEQ_TINY = "deq[dataset=synthetic,config=tiny,image_size=8,batch_size=2,n_train=2,n_test=4,eval_iters=10]"


def _single_thread(function):
    """Run FUNCTION on one thread: the tiny network gains nothing from more, the machine is shared."""
    import functools

    import torch

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return function(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)
    return wrapper


@_single_thread
def test_deq_y_star_is_a_fixed_point_of_the_cell():
    import torch

    from benchopt_bilevel.problems.deq import DEQ, DEQParams

    params = DEQParams(dataset="synthetic", config="tiny", image_size=8, batch_size=2, n_train=2, n_test=4)
    problem = DEQ(params, torch.Generator().manual_seed(0)).to("cpu", torch.float32)
    x = problem.x0().to(torch.float64)
    y = problem.y_star(x)
    assert y.dtype == torch.float64 and y.shape == (problem.dim_y,)
    residual = torch.linalg.vector_norm(problem.inner_map(x, y, None) - y) / torch.linalg.vector_norm(y)
    assert float(residual) < 1e-10
    # A non-trivial point: 20 plain iterations of the (non-contractive) cell from 0 stay far from it.
    z = torch.zeros_like(y)
    for _ in range(20):
        z = problem.inner_map(x, z, None)
    assert float(torch.linalg.vector_norm(z - y) / torch.linalg.vector_norm(y)) > 1e-2


def test_deq_sweeps_apply_to_the_fixed_point_problem_only():
    import torch

    from benchopt_bilevel.cells import build_problem
    from benchopt_bilevel.params import build_params, parse_spec
    from benchopt_bilevel.registry import get_problem, get_solver

    name, values = parse_spec(PROBLEM)
    quadratic = build_problem(get_problem(name), build_params(get_problem(name).Params, values, "quadratic"),
                              torch.device("cpu"), torch.float64)
    deq_sweeps = [s for s in track.SWEEPS if s.solver == "deq-implicit"]
    assert {s.label for s in deq_sweeps} >= {"deq-implicit (backward_iters)", "deq-capped (backward_iters)",
                                             "deq-shine (refine)", "deq-jfb"}
    # deq-implicit itself runs on the quadratic (its gradient-step map); the sweeps must not add rows there.
    assert get_solver("deq-implicit")().skip(quadratic) is None
    assert all("inner_map" in s.skip(quadratic) for s in deq_sweeps)
    assert all(s.skip(quadratic) is None for s in track.SWEEPS if s.solver in ("aid-cg", "itd", "jfb"))
    assert track.sweeps_by_label("deq-implicit") == deq_sweeps
    assert track.sweep_by_label("deq-capped").fixed["backward"] == "capped"


@_single_thread
def test_deq_implicit_backward_improves_with_its_iterations_and_beats_jfb():
    sweeps = [track.replace_values(track.sweep_by_label("deq-implicit"), (1, 32)), track.sweep_by_label("deq-jfb"),
              track.sweep_by_label("aid-cg")]
    logged = []
    table = track.run_track([DEQ_TINY], sweeps, log=logged.append)
    # Episodic: one inner point, the solver's own forward from y_start; AID skips the episodic problem.
    assert set(zip(table["x_point"], table["y_point"])) == {("x0", "y_start")}
    assert any("skip aid-cg" in line for line in logged) and "aid-cg" not in set(table["solver"])
    implicit = table[table["estimator"] == "deq-implicit (backward_iters)"].set_index("budget")["relative_error"]
    jfb = float(table.loc[table["estimator"] == "deq-jfb", "relative_error"].iloc[0])
    assert implicit.map(math.isfinite).all() and math.isfinite(jfb)
    assert implicit[32.0] < 0.75 * implicit[1.0]
    assert implicit[32.0] < 0.75 * jfb
    # Each backward iteration is one vjp of the cell (one hvp call); JFB makes none.
    implicit_calls = table[table["estimator"] == "deq-implicit (backward_iters)"].set_index("budget")["oracle_calls"]
    jfb_calls = float(table.loc[table["estimator"] == "deq-jfb", "oracle_calls"].iloc[0])
    assert implicit_calls[32.0] == implicit_calls[1.0] + 31 and jfb_calls < implicit_calls[1.0]


@_single_thread
def test_the_command_makes_the_deq_table_and_plot(tmp_path):
    args = ["hypergradients", "-p", DEQ_TINY, "-s", "deq-jfb", "-s", "aid-cg", "-o", str(tmp_path)]
    result = CliRunner().invoke(main, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "aid-cg (n_linear_steps): skipped" in result.output
    assert "cheapest estimator" in result.output and "y_start" in result.output
    table = load_track(tmp_path)
    assert set(table["estimator"]) == {"deq-jfb"}
    cheapest = track.cheapest(table)
    assert list(cheapest["y_point"]) == ["y_start"] * len(track.THRESHOLDS)
    assert list((tmp_path / "hypergradients").glob("pareto-*.svg"))
    from benchopt_bilevel.site.hypergradients import find_track, render_hypergradients

    page = render_hypergradients(find_track([tmp_path]), tmp_path / "site").read_text()
    assert "deq-jfb" in page and "y_start" in page and page.count("<svg") == 2


def test_the_inexact_inner_point_iterates_the_problem_s_own_map_when_it_states_one():
    import torch

    from benchopt_bilevel.cells import build_problem
    from benchopt_bilevel.oracles import Oracles
    from benchopt_bilevel.params import build_params, parse_spec
    from benchopt_bilevel.registry import get_problem

    name, values = parse_spec(PROBLEM)
    problem = build_problem(get_problem(name), build_params(get_problem(name).Params, values, "quadratic"),
                            torch.device("cpu"), torch.float64)
    x, y0 = problem.x0() + 1.0, problem.y0()
    y_star = problem.y_star(x)
    by_gradient = track._inexact_inner_point(Oracles(problem), x, y0, y_star)
    halfway = lambda x_, y_, batch: 0.5 * (y_ + y_star)  # noqa: E731 - a map whose fixed point is y*(x)
    problem.inner_map = halfway
    by_map = track._inexact_inner_point(Oracles(problem), x, y0, y_star)
    assert torch.allclose(by_map, y_star + 0.5 ** track.INNER_STEPS * (y0 - y_star))
    assert not torch.allclose(by_gradient, by_map)
