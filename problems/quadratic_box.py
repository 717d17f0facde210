"""Quadratic bilevel problem whose lower level is a box-constrained QP; exact answers by active sets.

    g(x, y), f(x, y): the per-sample quadratics of `problems/quadratic.py` (same construction)
    y*(x) = argmin_y g(x, y)   s.t.   −r ≤ y ≤ r   (componentwise)

The box radius is relative to the unconstrained solution: r = box_fraction · ‖y*_free(x*_free)‖_∞,
where x*_free and y*_free are the answers of the same problem without the box. Any box_fraction < 1
cuts the unconstrained optimum; the default 0.5 leaves 11 of the 100 bounds active at the
constrained solution with the default sizes (3 of 5 on the tests' small problem). y0 = 0 is feasible.

Exact answers (float64, never timed):
- y*(x): projected Newton on the box QP with ε-active sets (Bertsekas 1982), finished by a
  direct solve on the identified active set and accepted only when the KKT conditions hold, so
  the answer is exact up to rounding (a box QP has finitely many faces).
- ∇h(x) by implicit differentiation with the active set fixed (A = coordinates at a bound,
  F = the free ones): dy*_F/dx = −[Ā_FF]⁻¹ C̄_Fᵀ, dy*_A/dx = 0, so ∇h = ∇_x f − C̄ v* with
  v*_F = [Ā_FF]⁻¹ ∇_y f_F and v*_A = 0 (the reduced adjoint system). Where a constraint is only
  weakly active (at its bound with a zero multiplier) h has a kink and this is the gradient of
  the piece that keeps it active.
- h is piecewise quadratic: on the region of one active set, y*(x) = J_S x + c_S is affine.
  H̄ is shifted (every sample's H by the same multiple of I) so that every piece is
  mu_outer-strongly convex: ‖J_S‖ ≤ ‖C̄‖/λ_min(Ā) bounds the cross terms. h is still not convex
  across pieces (it has kinks), so x* is a local minimizer: Newton's method on the current piece
  with a backtracking line search on h, from the unconstrained x*, stops when the Newton step
  stays in its piece, i.e. by a direct solve once the active set is stable. When the minimizer
  sits on a kink (one constraint j weakly active at x*: at its bound with a zero multiplier; seen
  with small boxes, e.g. box_fraction=0.1 at the default sizes) no piece is stationary and the
  steps stall; x* is then the solution of one equality-constrained QP (the piece with j free,
  under y_j = bound_j), accepted only if 0 lies in the convex hull of the two adjacent pieces'
  gradients (Clarke stationarity). There grad_norm2 at x* is not zero (the gradient of the piece
  that keeps j active). Anything else (several weakly active constraints) fails loudly at build.

Metrics: value h(x), suboptimality h(x) − h*, relative_suboptimality (h(x) − h*)/(h(x0) − h*),
grad_norm2 ‖∇h(x)‖², inner_distance ‖y − y*(x)‖², distance_to_optimum ‖x − x*‖²,
feasibility_violation max_i max(−r − y_i, y_i − r, 0) of the solver's y (against the bounds in
the run's dtype, those `project_y` enforces), active_constraints (how many bounds y*(x) touches).

Target: relative_suboptimality ≤ 1e-3, the quadratic's (a relative gap, scale-free). A method
reaching another, lower local minimum of h would show a negative suboptimality.

Oracles are the quadratic's (the box changes the feasible set, not g or f); constrained methods
use `project_y` (a clamp in the run's dtype). Unconstrained methods skip this problem.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from benchopt_bilevel.problems.quadratic import Quadratic, QuadraticParams

Tensor = torch.Tensor


@dataclass
class QuadraticBoxParams(QuadraticParams):
    box_fraction: float = 0.5  # r = box_fraction · ‖y*(x*)‖_∞ of the unconstrained problem

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.box_fraction > 0:
            raise ValueError(f"box_fraction must be positive, got {self.box_fraction}")


def solve_box_qp(A: Tensor, q: Tensor, low: Tensor, high: Tensor, max_iter: int = 200) -> Tensor:
    """argmin_y ½ yᵀAy + qᵀy s.t. low ≤ y ≤ high, A symmetric positive definite (float64).

    Projected Newton with ε-active sets: coordinates at (or within ε of) a bound whose gradient
    pushes outward take a scaled gradient step, the others a Newton step on their face; a
    projected backtracking search keeps the decrease. After each step the active set is guessed
    and the face solved directly; that point is returned as soon as it satisfies the KKT
    conditions, so the result is exact up to rounding once the active set is identified.
    """
    scale = 1.0 + float(torch.max(torch.abs(q)))
    tol = 1e-10 * scale

    def objective(y: Tensor) -> Tensor:
        return 0.5 * y @ (A @ y) + q @ y

    y = torch.clamp(torch.linalg.solve(A, -q), low, high)
    for _ in range(max_iter):
        grad = A @ y + q
        candidate = _solve_face(A, q, low, high, (y <= low) & (grad > 0), (y >= high) & (grad < 0))
        if candidate is not None:
            return candidate
        eps = min(1e-3, float(torch.linalg.vector_norm(y - torch.clamp(y - grad, low, high))))
        binding = ((y <= low + eps) & (grad > 0)) | ((y >= high - eps) & (grad < 0))
        free = ~binding
        direction = -grad / torch.diagonal(A)
        if bool(free.any()):
            direction[free] = torch.linalg.solve(A[free][:, free], -grad[free])
        step, value = 1.0, objective(y)
        while True:
            trial = torch.clamp(y + step * direction, low, high)
            if objective(trial) <= value + 1e-4 * (grad @ (trial - y)) or step < 1e-12:
                break
            step /= 2
        y = trial
    grad = A @ y + q
    if float(torch.max(torch.abs(y - torch.clamp(y - grad, low, high)))) > tol:
        raise RuntimeError("box QP: projected Newton did not converge")
    return y


def _solve_face(A: Tensor, q: Tensor, low: Tensor, high: Tensor, at_low: Tensor, at_high: Tensor,
                ) -> Tensor | None:
    """The minimizer on the face {y_i = low_i (at_low), y_i = high_i (at_high)} if it is KKT."""
    tol = 1e-10 * (1.0 + float(torch.max(torch.abs(q))))
    y = torch.where(at_low, low, torch.where(at_high, high, torch.zeros_like(q)))
    free = ~(at_low | at_high)
    if bool(free.any()):
        bound = ~free
        rhs = -(q[free] + A[free][:, bound] @ y[bound])
        y[free] = torch.linalg.solve(A[free][:, free], rhs)
    grad = A @ y + q
    feasible = bool(torch.all(y >= low - tol)) and bool(torch.all(y <= high + tol))
    multipliers_ok = bool(torch.all(grad[at_low] >= -tol)) and bool(torch.all(grad[at_high] <= tol))
    stationary = bool(torch.all(torch.abs(grad[free]) <= tol))
    if feasible and multipliers_ok and stationary:
        return torch.clamp(y, low, high)
    return None


class QuadraticBox(Quadratic):
    """The quadratic with a box on y: exact y* (active-set QP), h, ∇h (reduced adjoint) and x*."""

    name = "quadratic_box"
    description = "Synthetic quadratic with a box-constrained lower level; exact answers by active sets"
    Params = QuadraticBoxParams
    constrained = True
    target_metric = "relative_suboptimality"
    target_value = 1e-3  # (h(x) − h*) / (h(x0) − h*) ≤ 1e-3
    divergence_metric = "relative_suboptimality"
    float64_attributes = Quadratic.float64_attributes + ("y_low64", "y_high64", "x_star_free")

    def __init__(self, params: QuadraticBoxParams, generator: torch.Generator) -> None:
        # Unbounded until the radius is known: the parent's closed forms are then this problem's.
        self.y_low64 = torch.full((params.dim_y,), -torch.inf, dtype=torch.float64)
        self.y_high64 = torch.full((params.dim_y,), torch.inf, dtype=torch.float64)
        super().__init__(params, generator)
        p, dx = params, params.dim_x

        # Make every piece of h mu_outer-strongly convex: λ_min(J_Sᵀ F̄ J_S + H̄ + K̄ J_S + J_SᵀK̄ᵀ)
        # ≥ λ_min(H̄) − 2‖K̄‖‖C̄‖/λ_min(Ā), since F̄ ⪰ 0 and ‖J_S‖ ≤ ‖C̄‖/λ_min(Ā) (interlacing).
        # By construction ‖K̄‖ = 0.1 L_cross, ‖C̄‖ = L_cross and λ_min(Ā) = mu_inner.
        cross = 2.0 * 0.1 * p.L_cross * p.L_cross / p.mu_inner
        shift = max(0.0, p.mu_outer - float(torch.linalg.eigvalsh(self.H_mean64)[0]) + cross)
        eye = torch.eye(dx, dtype=torch.float64)
        self.H = self.H + shift * eye
        self.H_mean64 = self.H_mean64 + shift * eye

        # Unconstrained answers, then the box around 0 that cuts them.
        hess_free = self.hessian_h + shift * eye
        zero = torch.zeros(dx, dtype=torch.float64)
        self.x_star_free = torch.linalg.solve(hess_free, -self._grad_h_affine(zero))
        radius = p.box_fraction * float(torch.max(torch.abs(self.J @ self.x_star_free + self.c)))
        self.y_low64 = torch.full_like(self.c, -radius)
        self.y_high64 = torch.full_like(self.c, radius)
        # The bounds `project_y` uses, cast to the run's dtype with the other data.
        self.y_low, self.y_high = self.y_low64.clone(), self.y_high64.clone()

        self.x_star, self.hessian_h = self._local_minimizer(self.x_star_free)
        self.h_star = self.value(self.x_star)
        self.h_x0 = self.value(zero)

    # -- constraint -----------------------------------------------------------------------------
    def project_y(self, y: Tensor) -> Tensor:
        return torch.minimum(torch.maximum(y, self.y_low), self.y_high)

    # -- exact answers (float64) -------------------------------------------------------------------
    def y_star(self, x: Tensor) -> Tensor:
        x = x.to(torch.float64)
        return solve_box_qp(self.A_mean64, x @ self.C_mean64 + self.a_mean64, self.y_low64, self.y_high64)

    def _piece(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """y*(x) and the affine map y = J_S x + c_S valid on the region of its active set."""
        x = x.to(torch.float64)
        y = self.y_star(x)
        J, c = self._affine((y > self.y_low64) & (y < self.y_high64), y)
        return y, J, c

    def _affine(self, free: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """J, c with y = J x + c solving the face where ~free coordinates stay at their values in y."""
        J = torch.zeros(self.dim_y, self.dim_x, dtype=torch.float64, device=y.device)
        c = y.clone()  # active coordinates sit on their bound
        if bool(free.any()):
            A_ff = self.A_mean64[free][:, free]
            J[free] = -torch.linalg.solve(A_ff, self.C_mean64[:, free].T)
            c[free] = -torch.linalg.solve(A_ff, self.a_mean64[free] + self.A_mean64[free][:, ~free] @ y[~free])
        return J, c

    def _piece_quadratic(self, J: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """Hessian Q and gradient at 0 of x ↦ f(x, J x + c): its gradient is Q x + b."""
        F, H, K = self.F_mean64, self.H_mean64, self.K_mean64
        Q = J.T @ F @ J + H + K @ J + J.T @ K.T
        b = self.h_mean64 + K @ c + J.T @ (F @ c + self.f_mean64)
        return (Q + Q.T) / 2, b

    def _outer_grads(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        grad_x = self.H_mean64 @ x + self.K_mean64 @ y + self.h_mean64
        grad_y = self.F_mean64 @ y + x @ self.K_mean64 + self.f_mean64
        return grad_x, grad_y

    def _outer_value(self, x: Tensor, y: Tensor) -> Tensor:
        F, H, K, f, h = self.F_mean64, self.H_mean64, self.K_mean64, self.f_mean64, self.h_mean64
        return 0.5 * y @ (F @ y) + 0.5 * x @ (H @ x) + x @ (K @ y) + f @ y + h @ x

    def value(self, x: Tensor) -> Tensor:
        """h(x) = f(x, y*(x)), exact."""
        x = x.to(torch.float64)
        return self._outer_value(x, self.y_star(x))

    def hypergradient(self, x: Tensor) -> Tensor:
        """∇h(x) = ∇_x f + (dy*/dx)ᵀ ∇_y f with the active set of y*(x) fixed."""
        x = x.to(torch.float64)
        y, J, _ = self._piece(x)
        grad_x, grad_y = self._outer_grads(x, y)
        return grad_x + J.T @ grad_y

    def v_star(self, x: Tensor) -> Tensor:
        """Reduced adjoint: Ā_FF v_F = ∇_y f_F on the free coordinates, v = 0 on the active ones."""
        x = x.to(torch.float64)
        y = self.y_star(x)
        free = (y > self.y_low64) & (y < self.y_high64)
        _, grad_y = self._outer_grads(x, y)
        v = torch.zeros_like(y)
        if bool(free.any()):
            v[free] = torch.linalg.solve(self.A_mean64[free][:, free], grad_y[free])
        return v

    def _local_minimizer(self, x: Tensor, max_iter: int = 100) -> tuple[Tensor, Tensor]:
        """Newton on the current piece of h with backtracking on h; returns x* and its piece Hessian.

        A stationary point inside a piece ends the loop (the Newton step then stays in its piece:
        a direct solve on a stable active set). When the minimizer sits on a kink the steps stall
        against it; `_kink_minimizer` then solves for the point of the kink.
        """
        scale = 1.0 + float(torch.linalg.vector_norm(self.h_mean64))
        for _ in range(max_iter):
            y, J, c = self._piece(x)
            hess, b = self._piece_quadratic(J, c)
            grad = hess @ x + b
            if float(torch.linalg.vector_norm(grad)) <= 1e-12 * scale:
                return x, hess
            direction = torch.linalg.solve(hess, -grad)
            step, value = 1.0, self._outer_value(x, y)
            while self.value(x + step * direction) > value + 1e-4 * step * (grad @ direction) and step > 1e-12:
                step /= 2
            if step < 1e-6:  # stalled against a kink
                found = self._kink_minimizer(x, y, scale)
                if found is not None:
                    return found
                break
            x = x + step * direction
        raise RuntimeError(f"{self.name}: no stationary point of h found (try another box_fraction or seed)")

    def _kink_minimizer(self, x: Tensor, y: Tensor, scale: float) -> tuple[Tensor, Tensor] | None:
        """The minimizer of h on a kink where one constraint j is weakly active, or None.

        Near the kink, j is either free (piece S') or at its bound (piece S). On the kink
        y_j = bound_j with j free, a linear constraint on x: minimize the S' quadratic under
        (J' x + c')_j = bound_j (an equality-constrained QP, one KKT solve). The point is accepted
        when it is Clarke stationary: a convex combination of the two pieces' gradients is ~0.
        """
        grad_y = self.A_mean64 @ y + x @ self.C_mean64 + self.a_mean64
        at_bound = (y <= self.y_low64) | (y >= self.y_high64)
        radius = float(self.y_high64[0])
        # How close each coordinate is to switching: multiplier when active, slack when free.
        closeness = torch.where(at_bound, torch.abs(grad_y),
                                torch.minimum(y - self.y_low64, self.y_high64 - y))
        j = int(torch.argmin(closeness))
        if float(closeness[j]) > 1e-4 * (1.0 + radius):
            return None
        bound = self.y_low64[j] if float(y[j]) < 0 else self.y_high64[j]
        face_y = torch.where(at_bound, y, torch.zeros_like(y))
        face_y[j] = bound
        free_with_j = ~at_bound
        free_with_j[j] = True
        J, c = self._affine(free_with_j, face_y)
        hess, b = self._piece_quadratic(J, c)
        G = J[j:j + 1]
        corner = torch.zeros(1, 1, dtype=G.dtype, device=G.device)
        kkt = torch.cat([torch.cat([hess, G.T], 1), torch.cat([G, corner], 1)])
        rhs = torch.cat([-b, (bound - c[j]).reshape(1)])
        x_kink = torch.linalg.solve(kkt, rhs)[: self.dim_x]
        free_without_j = free_with_j.clone()
        free_without_j[j] = False
        J_active, c_active = self._affine(free_without_j, face_y)
        hess_active, b_active = self._piece_quadratic(J_active, c_active)
        grads = (hess @ x_kink + b, hess_active @ x_kink + b_active)
        on_piece = torch.allclose(self.y_star(x_kink), J @ x_kink + c, rtol=0.0, atol=1e-9 * (1.0 + radius))
        if on_piece and _min_norm_pair(*grads) <= 1e-9 * scale:
            return x_kink, hess
        return None

    def evaluate(self, x: Tensor, y: Tensor) -> dict[str, float]:
        x64, y64 = x.detach().to(torch.float64), y.detach().to(torch.float64)
        y_star, J, _ = self._piece(x64)
        grad_x, grad_y = self._outer_grads(x64, y_star)
        value = float(self._outer_value(x64, y_star))
        gap = value - float(self.h_star)
        low, high = self.y_low.to(torch.float64), self.y_high.to(torch.float64)
        violation = torch.clamp(torch.maximum(low - y64, y64 - high), min=0.0)
        return {
            "h": value,  # h(x) = f(x, y*(x)), exact
            "suboptimality": gap,
            "relative_suboptimality": gap / float(self.h_x0 - self.h_star),
            "grad_norm2": float(torch.sum((grad_x + J.T @ grad_y) ** 2)),
            "inner_distance": float(torch.sum((y64 - y_star) ** 2)),
            "distance_to_optimum": float(torch.sum((x64 - self.x_star) ** 2)),
            "feasibility_violation": float(torch.max(violation)),
            "active_constraints": float(torch.sum((y_star <= self.y_low64) | (y_star >= self.y_high64))),
        }


def _min_norm_pair(g1: Tensor, g2: Tensor) -> float:
    """min over t in [0, 1] of ‖t g1 + (1 − t) g2‖: zero when 0 is in their convex hull."""
    diff = g1 - g2
    t = torch.clamp(-(g2 @ diff) / torch.clamp(diff @ diff, min=1e-300), 0.0, 1.0)
    return float(torch.linalg.vector_norm(t * g1 + (1 - t) * g2))
