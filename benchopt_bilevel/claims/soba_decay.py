"""SOBA with decaying steps keeps decreasing where constant steps stall."""
from ..fixtures import WELL_CONDITIONED
from . import Claim, Experiment, spec
from . import predicates as P

DECAYING = "soba[decay_inner=0.4,decay_outer=0.6]"
CONSTANT = "soba[decay_inner=0,decay_outer=0]"
METRIC = "objective_relative_suboptimality"
KEEPS_DECREASING = -2e-4  # decades a step over 300-3000: at least half a decade over the window
STALLED = -1e-4  # less than a quarter of a decade over the window


def predicate(rows):
    broken = P.inconclusive_if_broken(rows, [DECAYING, CONSTANT])
    if broken:
        return broken
    return P.all_of(
        P.below(rows, DECAYING, P.log_slope(METRIC, 300, 3000), KEEPS_DECREASING, "slope 300-3000"),
        P.above(rows, CONSTANT, P.log_slope(METRIC, 300, 3000), STALLED, "slope 300-3000"),
        P.ratio_of_medians(rows, DECAYING, CONSTANT, P.final_value(METRIC), "final suboptimality"),
    )


CLAIM = Claim(
    id="soba-decay",
    paper="Dagréou et al., NeurIPS 2022 (SOBA), arXiv 2201.13409: Theorem 1, ρ_t ∝ t^(-2/5), γ_t ∝ t^(-3/5) "
          "(theorem number from memory)",
    statement=("SOBA with the decaying steps of its analysis (a = 2/5, b = 3/5) keeps decreasing the "
               "suboptimality where the same method with constant steps stalls at a noise floor."),
    experiment=Experiment(problem=spec("quadratic", **{**WELL_CONDITIONED, "noise": 0.5}),
                          solvers=(DECAYING, CONSTANT), max_steps=3000, max_time=60, n_evals=30, dtype="float64"),
    predicate=predicate,
    scale="5-dimensional quadratic, 64 samples in blocks of 8, noise 0.5, float64, 3000 steps, 3 seeds",
    plot=("step", METRIC),
    notes=("Holds when the decaying run's log10 suboptimality falls at least 2e-4 decade a step over steps "
           "300-3000 (half a decade), the constant run's less than 1e-4 a step, and the decaying run ends "
           "lower (median over seeds). Initial steps ρ = 0.1, outer ratio 1 for both."),
)
