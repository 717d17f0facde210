"""T-RHG trades accuracy for memory: a longer truncation K gives a better hypergradient and
holds more iterates."""
from . import Claim, Experiment, spec
from . import predicates as P

ERROR = "hypergradient_error"
T = 128  # inner steps, the same for every K
TRUNCATIONS = (1, 8, 32, 128)
DIM_Y = 500
ITERATE_BYTES = DIM_Y * 8  # one stored float64 iterate
COMMON = dict(n_inner_steps=T, step_inner=1.0, step_outer=1e-6)
SOLVERS = {spec("t-rhg", n_backward_steps=k, **COMMON): k for k in TRUNCATIONS}
# Listed first and left out of the verdict: a worker's first run pays PyTorch's first-use loads
# (the first run of a probe read 10.1 MiB where the next ones read 7.8); three cheap runs so that
# each worker of a 2-job pool pays them outside the measured runs.
WARM_UP = spec("t-rhg", n_inner_steps=2, n_backward_steps=1)
# Inner contraction 1 − αμ = 0.97 (α = 1/L_inner): the truncation bias ~0.97^K is still 0.02 at K = 128.
PROBLEM = dict(n_inner=1, n_outer=1, batch_size=1, dim_x=5, dim_y=DIM_Y, noise=0.1, mu_inner=0.03, L_inner=1.0)
MIN_SLOPE = 0.5 * ITERATE_BYTES  # peak bytes per unit of K, at least half an iterate
MIN_R2 = 0.9


def predicate(rows):
    broken = P.inconclusive_if_broken(rows, list(SOLVERS), needs=[ERROR])
    if broken:
        return broken
    return P.all_of(P.falls_with(rows, SOLVERS, P.final_value(ERROR), "final ‖ĝ−∇h‖²"),
                    P.memory_grows(rows, SOLVERS, MIN_SLOPE, MIN_R2))


CLAIM = Claim(
    id="t-rhg-truncation",
    paper=("Shaban, Cheng, Hatch & Boots, AISTATS 2019 (truncated back-propagation), arXiv 1810.10667: "
           "the truncation bias decays geometrically in K while memory is K iterates instead of T "
           "(§3 and Proposition 3.1, numbers from memory)"),
    statement=("With a fixed number of inner steps, T-RHG's hypergradient error falls as the truncation K "
               "grows, while its peak memory grows with K."),
    experiment=Experiment(problem=spec("quadratic", **PROBLEM), solvers=(WARM_UP, *SOLVERS), max_steps=2,
                          max_time=60, n_evals=2, dtype="float64"),
    predicate=predicate,
    scale=(f"quadratic with dim_y = {DIM_Y} (an iterate is {ITERATE_BYTES // 1000} kB), inner contraction 0.97, "
           f"T = {T}, K = 1, 8, 32, 128, two outer steps of 1e-6 (x stays at x0), float64, 3 seeds"),
    plot=("step", ERROR),
    notes=("Accuracy: the runner's hypergradient_error at the last of two outer steps; the outer step is 1e-6 "
           "so that x stays at x0 and the error is the estimator's (truncation bias plus the inner error "
           "left after 2T warm-started inner steps, ~0.97^256), not where x got. Holds when the medians "
           "over seeds fall with every increase of K. Memory: the runner's peak_memory_bytes (on Linux CPU "
           "the resident-set high-water mark above the run's start, page-granular); holds when the line "
           "through the median peaks against K rises at least half an iterate (2 kB) per unit of K with "
           "R² ≥ 0.9 (T-RHG keeps its last K iterates as the rows of one tensor: 8·dim_y bytes each). A "
           "probe before this claim (dim_y = 1000, T = 256, K = 1, 64, 256, two steps, outside the claims "
           "track) read 7.8, 8.3 and 9.8 MiB (spreads ≤ 0.1 MiB after the worker's first run): differences "
           "0.5 and 2.0 MiB against 0.49 and 1.95 MiB of iterates; it took 4 minutes, hence dim_y = 500 and "
           "T = 128 here (signal 0.5 MiB at K = 128). Thresholds set before this claim's first run, which "
           "held: errors 204, 106, 15.2, 0.0226 at K = 1, 8, 32, 128; peaks 1.97, 2.00, 2.11, 2.44 MiB "
           "(slope 3.8 kB per unit of K against 4 kB an iterate, R² 0.998). T-RHG is deterministic and the "
           "quadratic's data come from its own seed: the errors' spreads are zero, the peaks' are the "
           "allocator's (≤ 25 kB). A platform without the memory column makes the memory half inconclusive."),
)
