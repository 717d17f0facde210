"""SHINE's backward is cheaper than the implicit backward and keeps a good hypergradient; JFB is
cheaper still with a worse one."""
import math

from . import Claim, Evidence, Experiment, spec
from . import predicates as P

IMPLICIT, SHINE, JFB = (spec("deq-implicit", backward=b) for b in ("implicit", "shine", "jfb"))
COSINE = "hypergradient_cosine"  # cos(estimate, exact ∇h): needs an exact hypergradient on the problem
SHINE_COSINE = 0.5  # SHINE's estimate must point within 60° of the exact hypergradient


def time_per_step(run):
    final = run.iloc[-1]
    return float(final["time"]) / float(final["step"]) if final["step"] > 0 else math.nan


def predicate(rows):
    broken = P.inconclusive_if_broken(rows, [IMPLICIT, SHINE, JFB])
    if broken:
        return broken
    cost = P.all_of(P.ratio_of_medians(rows, SHINE, IMPLICIT, time_per_step, "s/step"),
                    P.ratio_of_medians(rows, JFB, IMPLICIT, time_per_step, "s/step"))
    if COSINE not in rows or rows[COSINE].isna().all():
        quality = Evidence("inconclusive", "cosine to the exact hypergradient not recorded (deq's exact "
                                           "hypergradient is NaN where no equilibrium was found)")
    else:
        shine = P.spread(P.per_run(rows, SHINE, P.final_value(COSINE)))
        quality = P.all_of(P.above(rows, SHINE, P.final_value(COSINE), SHINE_COSINE, "cosine"),
                           P.below(rows, JFB, P.final_value(COSINE), shine["median"], "cosine"))
    return P.all_of(cost, quality)


CLAIM = Claim(
    id="deq-shine-jfb",
    paper=("Ramzi et al., ICLR 2022 (SHINE), arXiv 2106.00553; Fung et al., AAAI 2022 (JFB), arXiv 2103.12803: "
           "cheaper backward passes for implicit models"),
    statement=("On a deep equilibrium model, SHINE's backward (the forward pass's inverse estimate) is cheaper "
               "than the implicit backward while its hypergradient keeps a cosine above 0.5 with the exact "
               "one; JFB is cheaper than the implicit backward, with a lower cosine."),
    # One training batch (n_train = batch_size): h is that batch's loss, so the cosine measures the
    # backward rule, not the sampling of a batch.
    experiment=Experiment(problem=spec("deq", dataset="synthetic", config="tiny", image_size=8, batch_size=2,
                                       n_train=2, n_test=4, eval_iters=10),
                          solvers=(IMPLICIT, SHINE, JFB), max_steps=3, max_time=120, n_evals=3),
    predicate=predicate,
    scale="tiny MDEQ on 8×8 synthetic images, one batch of 2 training images, 3 steps, float32, 3 seeds",
    plot=("step", "time"),
    log_y=False,
    notes=("Cost: median seconds a step (the runner's synchronized step time over the run) of SHINE and "
           "JFB against the implicit backward (20 Broyden iterations). Quality: the final cosine between "
           "the step's estimate and deq's exact hypergradient (float64 equilibrium by Broyden then Newton, "
           "dense adjoint solve) at the iterate the runner evaluates, i.e. after that step's update; SHINE's "
           "median must exceed 0.5 and JFB's must be below SHINE's. The training set is one batch so that "
           "the estimate and ∇h are gradients of the same loss; the problem's data and weights come from its "
           "own seed parameter, so the three seeds run the same steps here (the cosine's spread is zero, "
           "the time's spread is the clock's)."),
)
