"""The conformance suite: every registered solver, including one dropped in later, must pass.

The rules live in the package (`benchopt_bilevel.conformance`), where `benchopt-bilevel check`
runs them on a solver file kept outside the repository; this file parametrizes them over the
registry (ids `test_rule[solver-rule]`), every rule but the compile table, which
test_conformance_compile.py runs. Budget (documented in README "Adding a solver"): on the
well-conditioned quadratic of `fixtures.WELL_CONDITIONED`, with the solver's default parameters,
float64, at most CONVERGENCE_STEPS steps reach relative suboptimality ≤ CONVERGENCE_TOLERANCE.
A solver whose paper makes it biased says why in `Solver.biased`; it must then stay below
BIASED_BOUND.
"""
from __future__ import annotations

import pytest

from benchopt_bilevel import conformance
from benchopt_bilevel.registry import solvers

SOLVERS = sorted(solvers())
COMPILE_RULE = "compile"  # its table, with its own checks, is test_conformance_compile.py
RULES = [name for name in conformance.RULES if name != COMPILE_RULE]


def test_registry_is_not_empty():
    assert len(SOLVERS) >= 8


def test_every_rule_is_run_by_the_suite():
    # A rule added to the package is a new column here, or the compile table's.
    assert set(RULES) | {COMPILE_RULE} == set(conformance.RULES)
    assert {"metadata", "pure-step", "oracle-cost", "determinism", "dtype-device", "no-nan",
            "convergence"} == set(RULES)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("name", SOLVERS)
def test_rule(name, rule):
    result = conformance.RULES[rule](solvers()[name])
    assert result.name == rule
    assert result.passed, f"{name} breaks {rule}: {result.message} (fix: {result.hint})"
