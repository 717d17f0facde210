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
