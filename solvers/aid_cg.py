"""AID-CG: approximate implicit differentiation with conjugate gradient (HOAG).

    y ← T GD steps on g(x, ·) (warm start);  v ← K CG iterations on ∇²_yy g v = ∇_y f (warm start);
    x ← x − γ (∇_x f − ∇²_xy g v)

Oracle cost per step (full batch): T grad_inner, K (+1 warm-start residual) hvp, 1 cross,
1 grad_outer.

References: F. Pedregosa. "Hyperparameter optimization with approximate gradient", ICML 2016,
arXiv 1602.02355; R. Grazzi, L. Franceschi, M. Pontil, S. Salzo. "On the iteration complexity
of hypergradient computation", ICML 2020, arXiv 2006.16218.
"""
from ._implicit import ImplicitSolver


class AIDCG(ImplicitSolver):
    name = "aid-cg"
    description = "Implicit hypergradient, linear system by conjugate gradient, full batch"
    reference = "Pedregosa, ICML 2016; Grazzi et al., ICML 2020"
    linear_solver = "cg"
    deviations = ("HOAG (Pedregosa 2016) tightens the inner and CG tolerances along the run; here T and K "
                  "are fixed counts (Grazzi et al.'s form), so a step has a fixed cost.",)
