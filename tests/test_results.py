"""Result files: schema round trip, atomic writes, corrupt files skipped by name."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from benchopt_bilevel.results import load_results, result_files, write_run
from benchopt_bilevel.runner import Cell, RunConfig, run_cell

from conftest import WELL_CONDITIONED


@pytest.fixture(scope="module")
def table():
    return run_cell(Cell("quadratic", "saba", WELL_CONDITIONED), RunConfig(max_steps=30, max_time=100))


def test_parquet_round_trip_keeps_the_schema(tmp_path, table):
    write_run(table, tmp_path, "run-a")
    loaded = load_results(tmp_path)
    assert list(loaded.columns) == list(table.columns)
    assert (loaded.dtypes == table.dtypes).all()
    pd.testing.assert_frame_equal(loaded, table)


def test_corrupt_file_is_named_and_skipped(tmp_path, table):
    write_run(table, tmp_path, "good")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.warns(UserWarning, match="broken.parquet"):
        loaded = load_results(tmp_path)
    assert len(loaded) == len(table)


def test_killed_writer_leaves_no_partial_file(tmp_path):
    """kill -9 in the middle of write_run: no <run_id>.parquet appears, readers see nothing broken."""
    script = textwrap.dedent(f"""
        import time, pandas as pd, pyarrow.parquet as pq
        from benchopt_bilevel import results
        real = pq.write_table
        def slow(table, handle, **kw):
            handle.write(b"PAR1 partial bytes")
            handle.flush()
            print("writing", flush=True)
            time.sleep(30)
        pq.write_table = slow
        results.write_run(pd.DataFrame({{"a": range(1000)}}), {str(tmp_path)!r}, "victim")
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "writing"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    assert not (tmp_path / "victim.parquet").exists()
    assert result_files(tmp_path) == []
    assert load_results(tmp_path).empty


def test_rewrite_replaces_whole_file(tmp_path, table):
    write_run(table.iloc[:2], tmp_path, "same")
    write_run(table, tmp_path, "same")
    assert len(load_results(tmp_path)) == len(table)


def test_missing_directory():
    with pytest.raises(FileNotFoundError):
        load_results("/nonexistent/results")
