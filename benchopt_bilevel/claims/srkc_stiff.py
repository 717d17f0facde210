"""The Runge–Kutta–Chebyshev inner optimizer is stable at a step where gradient descent diverges."""
from ..stochastic_inner import chebyshev_coefficients
from . import Claim, Experiment, spec
from . import predicates as P

STIFF = dict(n_inner=64, n_outer=64, dim_x=5, dim_y=5, batch_size=8, noise=0.1, mu_inner=0.1, L_inner=50.0,
             mu_outer=0.5, L_outer=1.0)
H = 0.06  # h · L_inner = 3: past gradient descent's stability limit hL < 2
# The inner option maps step_inner to h = step_inner · ℓ_s / 2 (the same fraction of SRKC's interval);
# this step_inner gives SRKC the same h as gradient descent's.
SRKC_STEP = round(2 * H / chebyshev_coefficients(5, 0.5)["stability_bound"], 6)
SGD = spec("aid-cg", inner="sgd", step_inner=H)
SRKC = spec("aid-cg", inner="srkc", step_inner=SRKC_STEP)
METRIC = "objective_relative_suboptimality"
TARGET = 1e-3


def diverged(run):
    return 1.0 if run.iloc[-1]["status"] == "diverged" or not run[METRIC].iloc[1:].lt(10.0).all() else 0.0


def predicate(rows):
    broken = P.inconclusive_if_broken(rows, [SGD, SRKC])
    if broken:
        return broken
    return P.all_of(P.above(rows, SGD, diverged, 1.0, "diverged (1 = yes)"),
                    P.reaches_target(rows, SRKC, METRIC, TARGET))


CLAIM = Claim(
    id="srkc-stiff",
    paper=("Eftekhari, Vandereycken, Vilmart & Zygalakis, BIT Numer. Math. 2021, arXiv 1805.07199: explicit "
           "stabilised gradient descent is stable for h·L up to ~(2 − 4η/3)s², against 2 for gradient descent"),
    statement=("On a stiff inner problem, the s-stage Chebyshev inner optimizer stays stable and converges at "
               "an inner step h where gradient descent diverges."),
    experiment=Experiment(problem=spec("quadratic", **STIFF), solvers=(SGD, SRKC), max_steps=500, max_time=60,
                          n_evals=20, dtype="float64"),
    predicate=predicate,
    scale="5-dimensional quadratic, inner spectrum [0.1, 50], h = 0.06 (hL = 3), AID-CG's inner loop, full batch, "
          "float64, 500 outer steps, 3 seeds",
    plot=("step", METRIC),
    notes=("Runs through AID-CG, whose step_inner drives only the inner loop (CG needs no step), so the two "
           "specifications differ only in the inner optimizer; AID-CG is full batch, so this checks the "
           "deterministic method, not its stochastic version. An SRKC step costs s = 5 gradients, gradient "
           "descent's one. Holds when the median SGD run diverges (status diverged or suboptimality ≥ 10) and "
           "at least 2 of 3 SRKC runs reach relative suboptimality 1e-3."),
)
