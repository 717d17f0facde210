"""The stored regression baseline is current: the regression grid run now reaches every target
with the same oracle calls (within x1.2) as speed/baseline — what the benchmark workflow
checks on every pull request. A change that makes a default solver converge slower fails here;
refresh the baseline as speed/regression.yaml says when the change is intended.
"""
from __future__ import annotations

from pathlib import Path

from benchopt_bilevel.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_regression_grid_matches_the_stored_baseline(tmp_path, capsys):
    out = tmp_path / "regression"
    code = main(["run", "--config", str(ROOT / "speed" / "regression.yaml"), "-o", str(out),
                 "--executor", "inline"], standalone_mode=False)
    assert code in (0, None)
    code = main(["compare", str(ROOT / "speed" / "baseline"), str(out), "--axis", "oracle",
                 "--ignore-device-name", "--fail-on-regression", "1.2"], standalone_mode=False)
    printed = capsys.readouterr()
    assert code in (0, None), printed.out[-3000:] + printed.err[-3000:]
    assert "no regression" in printed.err, printed.out[-3000:] + printed.err[-3000:]
