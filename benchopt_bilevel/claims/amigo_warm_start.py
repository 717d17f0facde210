"""AmIGO's warm start of the inner problems saves oracle calls to the target."""
from ..fixtures import WELL_CONDITIONED
from . import Claim, Experiment, spec
from . import predicates as P

WARM = "amigo"
COLD = "amigo[warm_start=false]"  # y and v restart from zero at every outer step
METRIC = "objective_relative_suboptimality"
TARGET = 1e-3  # the quadratic's documented target


def predicate(rows):
    broken = P.inconclusive_if_broken(rows, [WARM, COLD])
    if broken:
        return broken
    return P.all_of(
        P.reaches_target(rows, WARM, METRIC, TARGET, axis="oracle_total"),
        P.ratio_of_medians(rows, WARM, COLD, P.first_reach(METRIC, TARGET, "oracle_total"), "oracle calls to target"),
    )


CLAIM = Claim(
    id="amigo-warm-start",
    paper="Arbel & Mairal, ICLR 2022 (AmIGO), arXiv 2111.14580: §3, warm start of both inner problems",
    statement=("Warm-starting the inner problem and the linear system from the previous outer step reaches "
               "the target in fewer oracle calls than restarting them at every outer step."),
    experiment=Experiment(problem=spec("quadratic", **WELL_CONDITIONED), solvers=(WARM, COLD), max_steps=1000,
                          max_time=60, n_evals=30, dtype="float64"),
    predicate=predicate,
    scale="5-dimensional quadratic (the conformance problem), float64, 1000 steps, 3 seeds",
    plot=("oracle_total", METRIC),
    notes=("Holds when the warm-started runs reach relative suboptimality 1e-3 (median) in no more oracle "
           "calls than the cold-started ones (median over seeds; a run that never reaches it counts +inf). "
           "Needs a `warm_start` switch on amigo: without it the claim is inconclusive."),
)
