"""The summary of `run` and `show`: every name whole on an 80-column terminal."""
from __future__ import annotations

import pandas as pd
from rich.console import Console

from benchopt_bilevel import scoring
from benchopt_bilevel.benchmark import DEFAULT_PROBLEMS, DEFAULT_SOLVERS
from benchopt_bilevel.params import parse_spec
from benchopt_bilevel.summary import failure_notes, summary_view

LONG_SETTINGS = ('{"outer_ratio": 0.5, "step_inner": 0.01}', '{"outer_ratio": 2.0, "step_inner": 0.125}')
LONG_LABEL = "soba[outer_ratio=0.5,step_inner=0.01]"


def _run(run_id, problem, solver, seed, metric, values, status="ok", solver_params="{}", message=""):
    return [{"run_id": run_id, "problem": problem, "solver": solver, "seed": seed, "step": 100 * step,
             "time": 0.5 * (step + 1), "oracle_total": 400.0 * step, f"objective_{metric}": value,
             "status": status, "message": message, "final": step == len(values) - 1, "device": "cpu",
             "device_name": "Test CPU", "problem_params": "{}", "solver_params": solver_params,
             "dtype": "float32", "compiled": False, "peak_memory_bytes": 1e6}
            for step, value in enumerate(values)]


def default_benchmark_results() -> pd.DataFrame:
    """Rows named as the default benchmark's, plus two settings of SOBA (long labels) and a
    solver whose seeds end differently."""
    rows = []
    for problem in (parse_spec(spec)[0] for spec in DEFAULT_PROBLEMS):
        target = scoring.problem_target(problem)
        values = [10 * target.value, target.value / 2, target.value / 4]
        for solver in DEFAULT_SOLVERS:
            rows += _run(f"{problem}-{solver}", problem, solver, 0, target.metric, values)
        for index, params in enumerate(LONG_SETTINGS):
            rows += _run(f"{problem}-soba-{index}", problem, "soba", 0, target.metric, values, solver_params=params)
        rows += _run(f"{problem}-bome-1", problem, "bome", 1, target.metric, [1e9, float("nan")],
                     status="diverged", message="non-finite or blown-up iterate at step 100")
    return pd.DataFrame(rows)


def render(entries: pd.DataFrame, width: int = 80) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"), color_system=None)
    console.print(summary_view(entries, width))
    return console.export_text()


def test_every_name_fits_whole_in_80_columns():
    entries = scoring.summary(scoring.run_table(default_benchmark_results()))
    text = render(entries)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text  # nothing cut with an ellipsis
    words = set(text.split())
    for problem in ("quadratic", "logreg", "hypercleaning"):
        target = scoring.problem_target(problem)
        assert f"{problem}:" in words and target.metric in words, problem
        assert text.count(target.metric) == 1  # named once, in its table's title, not on each row
    for label in set(entries["solver_label"]):
        assert label in words, label  # whole, on one line
    assert LONG_LABEL in words
    assert "diverged," in words and "(1/2)" in words  # bome's seeds ended differently: wrapped
    assert "diverged, ok" in render(entries, width=120)  # on a wide terminal, nothing wraps


def test_the_view_shows_the_entries_numbers():
    entries = scoring.summary(scoring.run_table(default_benchmark_results()))
    quadratic = entries[entries["problem_label"] == "quadratic"]
    itd = quadratic[quadratic["solver_label"] == "itd"].iloc[0]
    assert (itd["time_median"], itd["final_step_median"], itd["n_runs"]) == (1.0, 200, 1)
    lines = {line.split()[0]: line.split() for line in render(quadratic, width=120).splitlines() if line.strip()}
    assert lines["itd"] == ["itd", "ok", "200", "1.5", "0.00025", "1"]
    assert lines["bome"] == ["bome", "diverged,", "ok", "150", "1.25", "0.00025", "—", "(1/2)"]


def test_failure_notes_name_the_entry_and_its_message():
    entries = scoring.summary(scoring.run_table(default_benchmark_results()))
    notes = failure_notes(entries)
    assert len(notes) == 3  # bome on each problem
    assert notes[0] == "hypercleaning bome (diverged, ok): non-finite or blown-up iterate at step 100"
