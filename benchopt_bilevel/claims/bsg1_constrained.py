"""BSG-1 is first order, keeps the lower level feasible and reaches quadratic_box's target."""
from ..fixtures import WELL_CONDITIONED
from . import Claim, Experiment, spec
from . import predicates as P

BSG1 = "bsg1"
METRIC = "objective_relative_suboptimality"
TARGET = 1e-3  # quadratic_box's documented target
FEASIBLE = 1e-9  # largest box violation of y that counts as feasible (float64 rounding)


def _worst_violation(run):
    return float(run["objective_feasibility_violation"].max()) if "objective_feasibility_violation" in run \
        else float("nan")


def predicate(rows):
    broken = P.inconclusive_if_broken(rows, [BSG1])
    if broken:
        return broken
    return P.all_of(
        P.no_second_order(rows, BSG1),
        P.below(rows, BSG1, _worst_violation, FEASIBLE, "worst box violation", all_runs=True),
        P.reaches_target(rows, BSG1, METRIC, TARGET),
    )


CLAIM = Claim(
    id="bsg1-constrained",
    paper="Giovannelli, Kent & Vicente, 2021 (BSG-1), arXiv 2110.00604: rank-one first-order surrogates, "
          "lower level with constraints",
    statement=("BSG-1 uses first-order oracles only, keeps the lower-level iterate feasible and reaches "
               "the target on a box-constrained quadratic."),
    experiment=Experiment(problem=spec("quadratic_box", **WELL_CONDITIONED), solvers=(BSG1,), max_steps=1000,
                          max_time=60, n_evals=20, dtype="float64", stop_at_target=True),
    predicate=predicate,
    scale="5-dimensional box-constrained quadratic (half of y*'s range), defaults, float64, ≤ 1000 steps, 3 seeds",
    plot=("step", METRIC),
    notes=("Holds when no run calls an HVP or a cross product, every evaluation of every run has y in the "
           "box (violation ≤ 1e-9) and at least 2 of 3 runs reach relative suboptimality 1e-3. BSG-1 "
           "declares itself biased (rank-one surrogates), so reaching the target is the open part."),
)
