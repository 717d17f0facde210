"""The per-run memory column: the run's own peak above its start, not the process's."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from benchopt_bilevel.memory import PeakMemory, _status_kib, process_peak_rss, reset_high_water_mark
from benchopt_bilevel.results import failure_table
from benchopt_bilevel.runner import Cell, RunConfig, run_cell

from conftest import WELL_CONDITIONED

MIB = 2**20
linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM and clear_refs are Linux's")
OMNIGLOT = [Path(__file__).parents[1] / "datasets" / "data" / f"images_background_small{i}.zip" for i in (1, 2)]


def _touched(n_bytes: int) -> torch.Tensor:
    return torch.ones(n_bytes // 4, dtype=torch.float32)  # written, hence resident


@linux
def test_clear_refs_resets_the_high_water_mark():
    block = _touched(64 * MIB)
    del block
    assert _status_kib("VmHWM") - _status_kib("VmRSS") >= 48 * 1024, "the freed block must have raised VmHWM"
    assert reset_high_water_mark()
    assert _status_kib("VmHWM") - _status_kib("VmRSS") < 8 * 1024


@linux
def test_meter_counts_what_runs_while_open_and_nothing_while_paused():
    meter = PeakMemory(torch.device("cpu"))
    assert (meter.peak(), meter.method) == (-1, "unknown")
    meter.start()
    assert meter.method == "linux_hwm_delta"
    block = _touched(64 * MIB)
    del block
    meter.pause()
    seen = meter.peak()
    assert 60 * MIB <= seen < 80 * MIB
    block = _touched(128 * MIB)  # e.g. an evaluation
    del block
    assert meter.peak() == seen
    meter.resume()
    assert meter.peak() < 80 * MIB


@linux
def test_tiny_quadratic_records_the_run_not_the_process():
    problem = {**WELL_CONDITIONED, "dim_x": 5, "dim_y": 5}
    table = run_cell(Cell("quadratic", "soba", problem, {}, seed=0),
                     RunConfig(max_steps=100, n_evals=5, dtype="float64"))
    assert table["status"].iloc[-1] == "ok"
    assert (table["memory_method"] == "linux_hwm_delta").all()
    peaks = table["peak_memory_bytes"].tolist()
    assert all(0 <= p < 50 * MIB for p in peaks), peaks
    assert peaks == sorted(peaks)  # a peak so far
    assert process_peak_rss() > 100 * MIB > peaks[-1]  # what the column used to show: PyTorch and all


def test_rows_without_a_measurement_say_so():
    cell = Cell("quadratic", "soba", WELL_CONDITIONED, {}, seed=0)
    row = failure_table(cell, RunConfig(max_steps=1), "timeout", "timeout", "killed").iloc[0]
    assert (row["peak_memory_bytes"], row["memory_method"]) == (-1, "unknown")


# -- few-shot: MAML keeps its K inner iterates for the reverse pass, iMAML keeps none ------------------

# Conv-4 at width 3 (192 channels, about 1M weights, 4 MiB an iterate in float32): large enough that
# MAML's stored iterates stand above glibc's heap noise (about ±12 MiB at these sizes), small
# enough for a minute on one thread. One query image, one outer step, one task.
FEWSHOT = dict(dataset="omniglot", width=3.0, n_query=1, n_test_episodes=2, eval_inner_steps=1)
INNER_STEPS = (1, 5, 10, 20)
IMAML_BAND = 0.15  # iMAML's peaks stay within ±15% of their median (seen: ±8%)


def _fewshot_peak(solver: str, n_inner_steps: int, **params) -> int:
    table = run_cell(Cell("fewshot", solver, FEWSHOT, {"n_tasks": 1, "n_inner_steps": n_inner_steps, **params},
                          seed=0), RunConfig(max_steps=1, n_evals=2))
    final = table.iloc[-1]
    assert final["status"] == "ok", final["message"]
    assert final["memory_method"] == "linux_hwm_delta"
    return int(final["peak_memory_bytes"])


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@linux
@pytest.mark.skipif(not all(p.exists() for p in OMNIGLOT), reason="the shipped Omniglot subsets are absent")
def test_maml_memory_grows_with_inner_steps_and_imaml_does_not(one_thread):
    from conftest import build_problem
    iterate = build_problem("fewshot", torch.float32, **FEWSHOT).x0().numel() * 4
    _fewshot_peak("maml", 1)  # first-use loads of this process (oneDNN, torch.func) out of the figures
    maml = [_fewshot_peak("maml", k) for k in INNER_STEPS]
    imaml = [_fewshot_peak("imaml", k, n_cg_steps=2) for k in INNER_STEPS]
    print("MiB per K", INNER_STEPS, "maml", [round(p / MIB) for p in maml], "imaml", [round(p / MIB) for p in imaml])
    median = sorted(imaml)[len(imaml) // 2]
    noise = IMAML_BAND * median
    growth = maml[-1] - maml[0]
    # K = 20 holds 19 more iterates than K = 1 (76 MiB here; seen: 77 to 92 MiB more).
    assert growth >= 0.75 * (INNER_STEPS[-1] - INNER_STEPS[0]) * iterate, (maml, iterate)
    assert all(b >= a - noise for a, b in zip(maml, maml[1:])), maml  # roughly monotonic
    assert all(abs(p - median) <= noise for p in imaml), imaml
    assert max(imaml) - min(imaml) < growth / 2, (imaml, maml)


def test_a_skipped_run_has_no_measurement():
    if not all(p.exists() for p in OMNIGLOT):
        pytest.skip("the shipped Omniglot subsets are absent")
    table = run_cell(Cell("fewshot", "aid-cg", {**FEWSHOT, "width": 0.125}, {}, seed=0), RunConfig(max_steps=1))
    row = table.iloc[-1]
    assert row["status"] == "skipped"
    assert (row["peak_memory_bytes"], row["memory_method"]) == (-1, "unknown")


def test_the_site_says_how_memory_was_measured():
    import pandas as pd

    from benchopt_bilevel.site.render import _memory_note
    note = _memory_note(pd.DataFrame({"memory_method": ["linux_hwm_delta", "unknown", None]}))
    assert "VmHWM" in note and "CUDA" not in note and "unknown" not in note
    assert "not recorded" in _memory_note(pd.DataFrame({"status": ["ok"]}))  # bundles from before the column
