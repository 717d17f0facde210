"""AID-FP: approximate implicit differentiation with fixed-point iterations on the adjoint.

    y ← T GD steps on g(x, ·) (warm start);
    v ← K fixed-point steps  v ← v − α (∇²_yy g v − ∇_y f)   from v = 0;
    x ← x − γ (∇_x f − ∇²_xy g v)

The fixed-point map is the transpose of the inner GD map's Jacobian: with Φ(y) = y − α∇_y g,
w ← ∂_yΦᵀ w + ∇_y f (Grazzi et al.'s form) is the iteration above with w = v / α. It contracts
at rate ρ = max |1 − α λ| over the spectrum of ∇²_yy g: ‖v_K − v*‖ ≤ ρ^K ‖v_0 − v*‖ at a fixed
(x, y). From v = 0 it equals the Neumann sum with one term fewer (the paper's remark);
`warm_start_v=True` starts from the previous step's v instead.

Oracle cost per step (full batch): T grad_inner, K hvp, 1 cross, 1 grad_outer.

Reference: R. Grazzi, L. Franceschi, M. Pontil, S. Salzo. "On the iteration complexity of
hypergradient computation", ICML 2020, arXiv 2006.16218.
"""
from dataclasses import dataclass

from benchopt_bilevel.params import paper

from ._implicit import AIDParams, ImplicitSolver


@dataclass
class AIDFPParams(AIDParams):
    warm_start_v: bool = paper(False, "the fixed-point method starts from v = 0 (Grazzi et al. 2020, Alg. of AID-FP)")


class AIDFP(ImplicitSolver):
    name = "aid-fp"
    description = "Implicit hypergradient, adjoint by fixed-point iterations of the inner GD map, full batch"
    reference = "Grazzi et al., ICML 2020, arXiv 2006.16218"
    linear_solver = "fixed_point"
    Params = AIDFPParams
