"""ESJ and ESJ-S need no second-order oracle and reach the quadratic's target."""
from ..fixtures import WELL_CONDITIONED
from . import Claim, Experiment, spec
from . import predicates as P

SOLVERS = ("esj", "esj-s")
METRIC = "objective_relative_suboptimality"
TARGET = 1e-3  # the quadratic's documented target


def predicate(rows):
    broken = P.inconclusive_if_broken(rows, SOLVERS)
    if broken:
        return broken
    return P.all_of(*(part for name in SOLVERS for part in (
        P.no_second_order(rows, name), P.reaches_target(rows, name, METRIC, TARGET))))


CLAIM = Claim(
    id="esj-first-order",
    paper="Sow, Ji & Liang, NeurIPS 2022 (ESJ / PZOBO), arXiv 2110.07004: Hessian-free hypergradients "
          "from zeroth-order Jacobian estimates",
    statement=("ESJ and its stochastic version estimate the hypergradient without any Hessian-vector or "
               "cross-derivative product and still reach the target on a strongly convex problem."),
    experiment=Experiment(problem=spec("quadratic", **WELL_CONDITIONED), solvers=SOLVERS, max_steps=1000,
                          max_time=60, n_evals=20, dtype="float64", stop_at_target=True),
    predicate=predicate,
    scale="5-dimensional quadratic (the conformance problem), defaults, float64, ≤ 1000 steps, 3 seeds",
    plot=("step", METRIC),
    notes="Holds when no run calls an HVP or a cross product and at least 2 of 3 runs of each reach 1e-3.",
)
