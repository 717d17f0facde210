"""`load_results`, `show`, `score` and `publish` on synthetic leaderboards of 1,000 and 10,000 runs.

The result sets are real run tables (the tiny quadratic) replicated over problems × solvers ×
seeds × two CPU models, ~25 evaluation rows a run, written as one parquet file per run and as
four overlapping bundles (speed/scale_data.py). Each operation runs in a fresh process; time
(imports excluded) and peak RSS (imports included) go to extra_info and are printed. Targets:
publish of 10,000 runs in ≤ 60 s and ≤ 2 GiB (docs/scaling.md). Run with

    pytest speed/test_bench_scale.py --benchmark-only -s        # SCALE_RUNS=1000 for the small set only

The sets are built once under SCALE_DIR (default $TMPDIR/benchopt-bilevel-scale; 10,000 runs: ~1 GiB, ~2 min).
"""
from __future__ import annotations

import os
import tempfile
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import scale_data  # noqa: E402

SIZES = [int(n) for n in os.environ.get("SCALE_RUNS", "1000,10000").split(",")]
ROOT = Path(os.environ.get("SCALE_DIR", Path(tempfile.gettempdir()) / "benchopt-bilevel-scale"))
OPERATIONS = ["load", "show", "score", "publish"]


@pytest.fixture(scope="module", params=SIZES, ids=lambda n: f"{n}runs")
def result_set(request):
    return scale_data.build(request.param, ROOT / f"runs-{request.param}")


@pytest.mark.parametrize("operation", OPERATIONS)
def test_scale(benchmark, result_set, operation):
    figures = benchmark.pedantic(scale_data.measure, args=(operation, result_set), rounds=1, iterations=1)
    benchmark.extra_info.update(figures)
    if operation == "publish":
        pages = scale_data.page_megabytes(result_set)
        benchmark.extra_info.update({f"page_mb_{name}": value for name, value in pages.items()})
        print(f"\n{result_set.name} site: index.html {pages['index']:.2f} MB, largest page {pages['largest']:.2f} MB, "
              f"{pages['pages']} pages, {pages['all']:.1f} MB in all")
    print(f"\n{result_set.name} {operation}: {figures['seconds']:.1f} s, "
          f"peak {figures['peak_bytes'] / 2 ** 30:.2f} GiB")
