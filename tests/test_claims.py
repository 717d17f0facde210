"""The claims track: shared predicates on hand-made tables, the registry, one tiny claim end to end
through the CLI (run, verdict line, claims table, resume, Claims page)."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import WELL_CONDITIONED

import benchopt_bilevel.claims as claims_module
from benchopt_bilevel.claims import Claim, Evidence, Experiment, claims, spec
from benchopt_bilevel.claims import predicates as P
from benchopt_bilevel.claims.run import cells_of, curves, judge
from benchopt_bilevel.claims.table import CLAIMS_FILE, read_claims, write_claims
from benchopt_bilevel.cli import main


def run_rows(spec_: str, seed: int, values, metric: str = "objective_m", status: str = "ok", steps=None,
             **columns) -> pd.DataFrame:
    """A run's rows: METRIC = VALUES at STEPS (default 0, 1, 2, ...), its status on every row."""
    steps = list(range(len(values))) if steps is None else list(steps)
    table = pd.DataFrame({"step": steps, "time": [0.1 * s for s in steps], metric: values,
                          "oracle_total": [10.0 * s for s in steps]})
    table["claim_solver"], table["seed"], table["status"], table["message"] = spec_, seed, status, ""
    for key, value in columns.items():
        table[key] = value
    return table


def rows_of(*runs: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(runs, ignore_index=True)


def geometric(spec_: str, rate: float, seeds=(0, 1, 2), n: int = 20, **columns) -> pd.DataFrame:
    """Runs whose metric is 10^(rate · step) (plus a per-seed wobble of 1%)."""
    return rows_of(*(run_rows(spec_, s, [10 ** (rate * k) * (1 + 0.01 * s) for k in range(n)], **columns)
                     for s in seeds))


# -- shared predicates -------------------------------------------------------------------------------
def test_spread_is_median_and_range_over_seeds():
    assert P.spread([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert math.isnan(P.spread([])["median"])


def test_log_slope_reads_decades_per_step_and_needs_three_points():
    run = run_rows("a", 0, [10.0 ** (-0.5 * k) for k in range(10)])
    assert P.log_slope("objective_m", 2, 8)(run) == pytest.approx(-0.5)
    assert math.isnan(P.log_slope("objective_m", 2, 3)(run))  # two points in the window


def test_below_and_above_hold_fail_and_say_inconclusive_without_data():
    rows = geometric("fast", -0.5)
    assert P.below(rows, "fast", P.log_slope("objective_m", 0, 19), -0.4, "slope").verdict == "holds"
    assert P.below(rows, "fast", P.log_slope("objective_m", 0, 19), -0.6, "slope").verdict == "fails"
    assert P.above(rows, "fast", P.log_slope("objective_m", 0, 19), -0.6, "slope").verdict == "holds"
    assert P.below(rows, "fast", P.log_slope("objective_m", 50, 60), -0.4, "slope").verdict == "inconclusive"
    assert P.below(rows, "absent", P.final_value("objective_m"), 1.0, "final").verdict == "inconclusive"


def test_ratio_of_medians_with_a_margin():
    rows = rows_of(geometric("good", -0.5), geometric("bad", -0.1))
    holds = P.ratio_of_medians(rows, "good", "bad", P.final_value("objective_m"), "final", margin=100.0)
    assert holds.verdict == "holds"
    assert holds.figures["bad/good final"] == pytest.approx(10 ** (19 * 0.4), rel=0.05)
    assert P.ratio_of_medians(rows, "bad", "good", P.final_value("objective_m"), "final").verdict == "fails"
    assert P.ratio_of_medians(rows, "good", "nobody", P.final_value("objective_m"), "final").verdict == "inconclusive"
    tie = rows_of(geometric("same", -0.1), geometric("also", -0.1, seeds=(0, 1, 2)))
    assert P.ratio_of_medians(tie, "same", "also", P.final_value("objective_m"), "final").verdict == "holds"
    assert P.ratio_of_medians(tie, "same", "also", P.final_value("objective_m"), "final",
                              strict=True).verdict == "fails"  # a tie is no evidence of "fewer"


def test_reaches_target_counts_runs_and_gives_the_axis_at_the_first_hit():
    rows = rows_of(run_rows("s", 0, [1.0, 0.1, 1e-4]), run_rows("s", 1, [1.0, 1e-4, 1e-5]),
                   run_rows("s", 2, [1.0, 0.5, 0.5]))
    evidence = P.reaches_target(rows, "s", "objective_m", 1e-3, axis="oracle_total")
    assert evidence.verdict == "holds"  # 2 of 3
    assert evidence.figures["s oracle_total to target"]["median"] == 20.0  # 20, 10, inf
    assert P.reaches_target(rows, "s", "objective_m", 1e-3, min_fraction=1.0).verdict == "fails"


def test_no_second_order_reads_the_oracle_call_columns():
    first = geometric("fo", -0.1, oracle_grad_inner=5.0, oracle_hvp=0.0, oracle_cross_full=0.0)
    second = geometric("so", -0.1, oracle_grad_inner=5.0, oracle_hvp=0.0, oracle_cross_full=3.0)
    assert P.no_second_order(first, "fo").verdict == "holds"
    evidence = P.no_second_order(second, "so")
    assert evidence.verdict == "fails" and "3 second-order calls" in evidence.summary
    assert P.no_second_order(first, "nobody").verdict == "inconclusive"


def test_ranking_needs_the_claimed_order():
    rows = rows_of(geometric("a", -0.3), geometric("b", -0.2), geometric("c", -0.1))
    assert P.ranking(rows, ["a", "b", "c"], P.final_value("objective_m"), "final").verdict == "holds"
    assert P.ranking(rows, ["b", "a", "c"], P.final_value("objective_m"), "final").verdict == "fails"


def test_growth_fits_the_medians_against_a_parameter():
    rows = rows_of(*(run_rows(f"k={k}", s, [0.0], peak_memory_bytes=1e6 * k + 1e4 * s)
                     for k in (1, 5, 10) for s in range(3)))
    fit = P.growth(rows, {"k=1": 1, "k=5": 5, "k=10": 10}, P.memory_peak)
    assert fit["slope"] == pytest.approx(1e6) and fit["r2"] == pytest.approx(1.0)
    assert P.linear_fit([1, 2, 3], [5, 5, 5]) == (pytest.approx(0.0), 1.0)
    assert math.isnan(P.memory_peak(run_rows("x", 0, [0.0], peak_memory_bytes=-1)))


def test_a_broken_run_makes_a_claim_inconclusive_a_diverged_one_does_not():
    rows = rows_of(geometric("ok", -0.1), run_rows("bad", 0, [1.0], status="error"))
    evidence = P.inconclusive_if_broken(rows, ["ok", "bad"])
    assert evidence.verdict == "inconclusive" and "bad seed=0: error" in evidence.summary
    diverged = rows_of(geometric("ok", -0.1), run_rows("div", 0, [1.0, np.inf], status="diverged"))
    assert P.inconclusive_if_broken(diverged, ["ok", "div"]) is None
    assert P.inconclusive_if_broken(rows, ["ok", "missing"]).verdict == "inconclusive"


def test_all_of_fails_on_any_failure_and_is_inconclusive_on_a_gap():
    holds, fails, gap = (Evidence(v, v, {v: 1}) for v in ("holds", "fails", "inconclusive"))
    assert P.all_of(holds, holds).verdict == "holds"
    assert P.all_of(holds, gap).verdict == "inconclusive"
    assert P.all_of(gap, fails, holds).verdict == "fails"
    assert P.all_of(holds, fails).figures == {"holds": 1, "fails": 1}
    with pytest.raises(ValueError):
        Evidence("maybe", "")


# -- the registry ------------------------------------------------------------------------------------
def test_every_claim_is_well_formed():
    table = claims()
    assert len(table) >= 10
    for claim_id, claim in table.items():
        assert claim.id == claim_id and claim.statement and claim.paper and claim.scale and claim.notes
        assert len(claim.experiment.seeds) >= 3
        cells, specs, config = cells_of(claim)
        assert len(cells) == len(claim.experiment.solvers) * len(claim.experiment.seeds) == len(specs)
        assert config.max_steps or config.max_time


def test_auto_path_is_fast_only_where_time_is_the_budget():
    timed = Claim("t", "p", "s", Experiment("logreg", ("soba",), max_time=2.0), predicate=None, scale="s")
    stepped = Claim("s", "p", "s", Experiment("quadratic", ("soba",), max_steps=10), predicate=None, scale="s")
    assert cells_of(timed)[2].step_path == "auto" and cells_of(stepped)[2].step_path == "eager"
    assert cells_of(stepped, "fast")[2].step_path == "fast" and cells_of(timed, "eager")[2].step_path == "eager"


def test_experiments_need_three_seeds():
    with pytest.raises(ValueError, match="3 seeds"):
        Experiment(problem="quadratic", solvers=("soba",), seeds=(0, 1))


def test_a_predicate_that_raises_is_inconclusive():
    claim = Claim("boom", "p", "s", Experiment("quadratic", ("soba",)), predicate=lambda rows: 1 / 0, scale="s")
    evidence = judge(claim, pd.DataFrame())
    assert evidence.verdict == "inconclusive" and "ZeroDivisionError" in evidence.summary


def test_curves_keep_every_seed_and_the_table_is_strict_json(tmp_path):
    claim = Claim("c", "p", "s", Experiment("quadratic", ("a",)), predicate=lambda rows: None, scale="s",
                  plot=("step", "objective_m"))
    rows = geometric("a", -0.5, n=4)
    rows.loc[3, "objective_m"] = np.inf
    found = curves(claim, rows)
    assert len(found["a"]) == 3 and found["a"][0][0] == [0.0, 1.0, 2.0, 3.0]
    write_claims(tmp_path, [{"id": "c", "verdict": "holds", "curves": found, "figures": {"x": math.nan}}])
    text = (tmp_path / CLAIMS_FILE).read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"non-strict JSON constant {name}"))
    assert read_claims(tmp_path)[0]["curves"]["a"][0][1][3] == "inf"
    write_claims(tmp_path, [{"id": "d", "verdict": "fails"}])  # merged by id
    assert [e["id"] for e in read_claims(tmp_path)] == ["c", "d"]


# -- one tiny claim end to end ---------------------------------------------------------------------
SABA, SOBA = "saba", "soba[decay_inner=0,decay_outer=0]"


def _tiny_claims():
    experiment = Experiment(problem=spec("quadratic", **WELL_CONDITIONED), solvers=(SABA, SOBA), max_steps=40,
                            max_time=30, n_evals=6, dtype="float64")
    tiny = Claim("tiny-saba-beats-soba", "test", "SABA ends closer than SOBA.", experiment,
                 predicate=lambda rows: P.ratio_of_medians(rows, SABA, SOBA,
                                                           P.final_value("objective_relative_suboptimality"), "final"),
                 scale="tiny", plot=("step", "objective_relative_suboptimality"), notes="test")
    reversed_ = Claim("tiny-soba-beats-saba", "test", "SOBA ends closer than SABA (false).", experiment,
                      predicate=lambda rows: P.ratio_of_medians(rows, SOBA, SABA,
                                                                P.final_value("objective_relative_suboptimality"),
                                                                "final"),
                      scale="tiny", notes="test")
    missing = Claim("tiny-missing-option", "test", "Needs an option that does not exist.",
                    Experiment("quadratic", ("soba[no_such_option=1]",)), predicate=lambda rows: None, scale="tiny",
                    notes="test")
    return {c.id: c for c in (tiny, reversed_, missing)}


def test_claims_command_runs_judges_resumes_and_publishes(tmp_path, monkeypatch):
    monkeypatch.setattr(claims_module, "claims", _tiny_claims)
    out_dir, site = tmp_path / "claims", tmp_path / "site"
    runner = CliRunner()
    result = runner.invoke(main, ["claims", "-o", str(out_dir), "--executor", "inline"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("HOLDS") and "tiny-saba-beats-soba" in line for line in lines), result.output
    assert any(line.startswith("FAILS") and "tiny-soba-beats-saba" in line for line in lines), result.output
    assert any(line.startswith("INCONCLUSIVE") and "no_such_option" in line for line in lines), result.output
    entries = {e["id"]: e for e in read_claims(out_dir)}
    assert entries["tiny-saba-beats-soba"]["verdict"] == "holds"
    assert len(entries["tiny-saba-beats-soba"]["run_ids"]) == 6
    assert entries["tiny-missing-option"]["run_ids"] == []
    assert len(list(out_dir.glob("*.parquet"))) == 6  # the two claims share their runs

    again = runner.invoke(main, ["claims", "--only", "tiny-saba-beats-soba", "-o", str(out_dir),
                                 "--executor", "inline"])
    assert again.exit_code == 0, again.output
    assert "6 of 6 tiny-saba-beats-soba already complete" in again.output
    assert len(read_claims(out_dir)) == 3  # the other claims' verdicts are kept

    published = runner.invoke(main, ["publish", str(out_dir), "--site", str(site)])
    assert published.exit_code == 0, published.output
    page = (site / "claims.html").read_text()
    assert page.count("<tr id=\"claim-") == 3
    assert 'data-verdict="fails"' in page and "verdict-fails" in page and "<svg" in page
    assert 'href="claims.html"' in (site / "index.html").read_text()
    assert (site / "bundle" / CLAIMS_FILE).is_file()


def test_unknown_claim_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(claims_module, "claims", _tiny_claims)
    result = CliRunner().invoke(main, ["claims", "--only", "nope"])
    assert result.exit_code == 1 and "unknown claim 'nope'" in result.output


def test_deq_claim_reads_the_cosine_to_the_exact_hypergradient():
    """deq-shine-jfb on hand-made runs: cheaper backwards and SHINE's cosine above 0.5 with JFB's lower
    holds; JFB's cosine above SHINE's fails; no cosine recorded is inconclusive."""
    from benchopt_bilevel.claims import deq_backward as deq

    def runs(cosines, seconds=(1.0, 0.4, 0.2)):
        return rows_of(*(run_rows(spec_, s, [1.0, 0.9, 0.8], steps=[0, 1, 2], hypergradient_cosine=[np.nan, c, c])
                         .assign(time=[0.0, t, 2 * t])
                         for spec_, c, t in zip((deq.IMPLICIT, deq.SHINE, deq.JFB), cosines, seconds)
                         for s in (0, 1, 2)))

    assert deq.predicate(runs((0.99, 0.8, 0.3))).verdict == "holds"
    assert deq.predicate(runs((0.99, 0.6, 0.8))).verdict == "fails"  # JFB points closer than SHINE
    assert deq.predicate(runs((0.99, 0.4, 0.3))).verdict == "fails"  # SHINE below 0.5
    assert deq.predicate(runs((0.99, 0.8, 0.3), seconds=(1.0, 2.0, 0.2))).verdict == "fails"  # SHINE dearer
    no_cosine = runs((0.99, 0.8, 0.3)).drop(columns="hypergradient_cosine")
    assert deq.predicate(no_cosine).verdict == "inconclusive"


def test_falls_with_needs_every_median_lower_than_the_last():
    specs = {"k=1": 1, "k=4": 4, "k=16": 16}
    falling = rows_of(*(run_rows(s, seed, [1.0, e * (1 + 0.01 * seed)]) for s, e in zip(specs, (1.0, 0.1, 0.01))
                        for seed in range(3)))
    assert P.falls_with(falling, specs, P.final_value("objective_m"), "error").verdict == "holds"
    flat = rows_of(*(run_rows(s, seed, [1.0, e]) for s, e in zip(specs, (1.0, 0.1, 0.1)) for seed in range(3)))
    assert P.falls_with(flat, specs, P.final_value("objective_m"), "error").verdict == "fails"  # a tie
    assert P.falls_with(falling, {**specs, "k=64": 64}, P.final_value("objective_m"), "error").verdict == "inconclusive"


def test_memory_grows_reads_the_slope_and_the_fit_of_the_peaks():
    specs = {"k=1": 1, "k=8": 8, "k=32": 32}

    def peaks(per_unit, wobble=0.0, measured=True):
        return rows_of(*(run_rows(s, seed, [0.0], peak_memory_bytes=(2e6 + per_unit * k + wobble * (-1) ** k * seed)
                                  if measured else -1)
                         for s, k in specs.items() for seed in range(3)))

    assert P.memory_grows(peaks(4000), specs, 2000, 0.9).verdict == "holds"
    assert P.memory_grows(peaks(1000), specs, 2000, 0.9).verdict == "fails"  # too flat
    noisy = rows_of(*(run_rows(s, seed, [0.0], peak_memory_bytes=2e6 + 4000 * k + (1.2e5 if s == "k=8" else 0))
                      for s, k in specs.items() for seed in range(3)))
    bumpy = P.memory_grows(noisy, specs, 2000, 0.9)
    assert bumpy.verdict == "fails" and bumpy.figures["peak slope (bytes per unit)"] >= 2000  # no line: R² < 0.9
    assert P.memory_grows(peaks(4000, measured=False), specs, 2000, 0.9).verdict == "inconclusive"


def test_an_unrecorded_column_is_inconclusive_not_diverged():
    rows = geometric("a", -0.1)
    assert P.inconclusive_if_unrecorded(rows, "objective_m") is None
    assert P.inconclusive_if_unrecorded(rows, "hypergradient_error").verdict == "inconclusive"
    assert P.inconclusive_if_unrecorded(rows.assign(objective_m=np.nan), "objective_m").verdict == "inconclusive"


def test_lower_median_is_strict_and_says_whether_spreads_overlap():
    def pair(better, worse):
        return rows_of(*(run_rows("a", s, [1.0, v]) for s, v in enumerate(better)),
                       *(run_rows("b", s, [1.0, v]) for s, v in enumerate(worse)))

    apart = P.lower_median(pair((0.1, 0.2, 0.3), (0.5, 0.6, 0.7)), "a", "b", P.final_value("objective_m"), "final")
    assert apart.verdict == "holds" and apart.figures["spreads overlap"] is False
    overlap = P.lower_median(pair((0.1, 0.2, 0.6), (0.5, 0.6, 0.7)), "a", "b", P.final_value("objective_m"), "final")
    assert overlap.verdict == "holds" and overlap.figures["spreads overlap"] is True and "overlap" in overlap.summary
    assert P.lower_median(pair((0.6,) * 3, (0.6,) * 3), "a", "b", P.final_value("objective_m"), "x").verdict == "fails"
    assert P.lower_median(pair((0.7,) * 3, (0.6,) * 3), "a", "b", P.final_value("objective_m"), "x").verdict == "fails"
    assert P.lower_median(pair((0.1,) * 3, ()), "a", "b", P.final_value("objective_m"), "x").verdict == "inconclusive"


def test_t_rhg_claim_needs_a_falling_error_and_a_growing_memory():
    from benchopt_bilevel.claims import t_rhg_truncation as trhg

    def runs(errors, bytes_per_k=trhg.ITERATE_BYTES, status="ok", measured=True):
        return rows_of(*(run_rows(s, seed, [1e3, e], metric=trhg.ERROR, status=status,
                                  peak_memory_bytes=2e6 + bytes_per_k * k if measured else -1)
                         for (s, k), e in zip(trhg.SOLVERS.items(), errors) for seed in range(3)))

    falling = (200.0, 100.0, 15.0, 0.02)
    assert trhg.predicate(runs(falling)).verdict == "holds"
    assert trhg.predicate(runs((200.0, 100.0, 150.0, 0.02))).verdict == "fails"  # not falling at K = 32
    assert trhg.predicate(runs(falling, bytes_per_k=100)).verdict == "fails"  # memory flat in K
    assert trhg.predicate(runs(falling, measured=False)).verdict == "inconclusive"  # no memory column here
    assert trhg.predicate(runs(falling).drop(columns=trhg.ERROR)).verdict == "inconclusive"  # no exact ∇h
    assert trhg.predicate(runs(falling, status="error")).verdict == "inconclusive"


def test_krylov_claim_compares_each_pair_at_equal_hvps():
    from benchopt_bilevel.claims import lancbio_krylov_neumann as krylov

    def runs(errors):  # errors: the Krylov methods' then the Neumann series'
        specs = [*krylov.PAIRS, *krylov.PAIRS.values()]
        return rows_of(*(run_rows(s, seed, [1e4, e], metric=krylov.ERROR, hypergradient_cosine=0.9)
                         for s, e in zip(specs, errors) for seed in range(3)))

    assert krylov.predicate(runs((0.6, 0.1, 2e4, 2e4))).verdict == "holds"
    assert krylov.predicate(runs((0.6, 3e4, 2e4, 2e4))).verdict == "fails"  # SubBiO worse than Neumann-3
    assert krylov.predicate(runs((0.6, 0.1, 0.6, 2e4))).verdict == "fails"  # a tie is no evidence
    assert krylov.predicate(runs((0.6, 0.1, 2e4, 2e4)).drop(columns=krylov.ERROR)).verdict == "inconclusive"


def test_shine_jfb_claim_reads_the_final_validation_loss():
    from benchopt_bilevel.claims import shine_jfb_logreg as shine

    def runs(shine_final, jfb_final):
        return rows_of(*(run_rows(s, seed, [0.69, v], metric=shine.METRIC, objective_h=[0.66, v])
                         for s, v in ((shine.SHINE, shine_final), (shine.JFB, jfb_final)) for seed in range(3)))

    holds = shine.predicate(runs(0.38, 0.63))
    assert holds.verdict == "holds" and holds.figures[f"{shine.SHINE} final h"]["median"] == pytest.approx(0.38)
    assert shine.predicate(runs(0.65, 0.63)).verdict == "fails"
    assert shine.predicate(runs(0.38, 0.63).drop(columns=shine.METRIC)).verdict == "inconclusive"
