"""The deep tracks on the leaderboard: tiny few-shot (Omniglot, shipped subsets) and DEQ
(synthetic images) runs go through `publish` like any other problem, each with its table, its
solver rows and its documented target; the runs behind them finish ok."""
from __future__ import annotations

import json
import re

import pytest
import torch
from click.testing import CliRunner

from benchopt_bilevel.cli import main
from benchopt_bilevel.results import load_results

from test_deep_deq import TINY as DEQ_TINY
from test_deep_fewshot import TINY as FEWSHOT_TINY


def _spec(name: str, params: dict) -> str:
    return f"{name}[" + ",".join(f"{k}={v}" for k, v in params.items()) + "]"


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_fewshot_and_deq_runs_are_published(tmp_path):
    runner = CliRunner()
    results, site = tmp_path / "results", tmp_path / "site"
    common = ["--max-steps", "2", "--n-evals", "2", "--executor", "inline", "-o", str(results)]
    fewshot = runner.invoke(main, ["run", "-p", _spec("fewshot", {**FEWSHOT_TINY, "dataset": "omniglot"}),
                                   "-s", "maml[n_tasks=2,n_inner_steps=2,first_order=true]", *common])
    assert fewshot.exit_code == 0, fewshot.output
    deq = runner.invoke(main, ["run", "-p", _spec("deq", DEQ_TINY),
                               "-s", "deq-implicit[backward=jfb,forward_iters=6]",
                               "-s", "deq-implicit[backward=shine,forward_iters=6]", *common])
    assert deq.exit_code == 0, deq.output
    # A failed run still leaves a row (and a table entry), so check the runs themselves: three,
    # each ok after its two steps with a test error in [0, 1].
    runs = load_results(results).sort_values("step").groupby("run_id").tail(1)
    runs = runs.assign(backward=runs["solver_params"].map(lambda text: json.loads(text).get("backward")))
    assert sorted(zip(runs["problem"], runs["solver"], runs["backward"].fillna("-"))) == [
        ("deq", "deq-implicit", "jfb"), ("deq", "deq-implicit", "shine"), ("fewshot", "maml", "-")]
    for _, run in runs.iterrows():
        where = f"{run['problem']} {run['solver']} {run['solver_params']}"
        assert run["status"] == "ok", f"{where}: {run['status']} ({run['message']})"
        assert run["stop_reason"] == "max_steps" and run["step"] == 2, where
        assert 0.0 <= run["objective_test_error"] <= 1.0, where
    published = runner.invoke(main, ["publish", str(results), "--site", str(site)])
    assert published.exit_code == 0, published.output
    page = (site / "index.html").read_text()
    for problem, target in (("fewshot", "test_error"), ("deq", "test_error")):
        assert re.search(rf">\s*{problem}\s*<", page), f"no table for {problem}"
        assert target in page
    # Entries are labelled by the parameters that tell them apart: the two DEQ backward rules.
    assert re.search(r">\s*maml\s*<", page)
    assert "backward=jfb" in page and "backward=shine" in page
