"""Deep-equilibrium training: Broyden forward root finding, then a choice of backward rule.

The inner solution is the fixed point y* = T(x, y*) of the problem's own map when it states one
(its `inner_map`, e.g. a DEQ layer, see problems/deq.py) or, on any other problem, of the
gradient step T(x, y) = y − α ∇_y g(x, y). Broyden works on y as (y_rows, -1), one inverse
estimate per independent row (one per image on a DEQ). Per
step, on one batch (y restarted from y_start on an episodic problem, warm-started otherwise):

    forward:   y, H ← Broyden on T(x, y) − y = 0 (forward_iters evaluations of T), H ≈ (J − I)⁻¹
               the low-rank inverse estimate, J = ∂_y T
    backward:  w ≈ (I − Jᵀ)⁻¹ ∇_y f(x, y), by
               implicit  Broyden on w = Jᵀ w + ∇_y f from 0 (backward_iters vjps)
               shine     w = −Hᵀ ∇_y f, no vjp (SHINE), then `refine` Broyden steps started
                         from it with Hᵀ as the initial estimate (SHINE-refine)
               jfb       w = ∇_y f, no vjp (Jacobian-free backprop)
               capped    backward_iters fixed-point steps w ← Jᵀ w + ∇_y f from ∇_y f
    x ← Adam or SGD step along ∇_x f(x, y) + ∂_x T(x, y)ᵀ w.

Oracle cost per step: forward_iters + 1 grad_inner (evaluations of T), 1 grad_outer, the
backward's vjps as hvp (implicit: backward_iters + 1; shine: refine + 1 if refine > 0, else 0;
jfb: 0; capped: backward_iters), and one more vjp for ∂_x Tᵀ w (1 hvp + 1 cross).

References: S. Bai, J. Z. Kolter, V. Koltun. "Deep equilibrium models", NeurIPS 2019 (Broyden
forward and backward; MDEQ: 18 forward and 20 backward iterations); Z. Ramzi, F. Mannel,
S. Bai, J.-L. Starck, P. Ciuciu, T. Moreau. "SHINE: SHaring the INverse Estimate from the
forward pass for bi-level optimization and implicit models", ICLR 2022, arXiv 2106.00553;
S. W. Fung, H. Heaton, Q. Li, D. McKenzie, S. Osher, W. Yin. "JFB: Jacobian-free
backpropagation for implicit networks", AAAI 2022, arXiv 2103.12803.
"""
from dataclasses import dataclass

import torch

from benchopt_bilevel import rng
from benchopt_bilevel.linalg import repeat
from benchopt_bilevel.nn.broyden import broyden, inverse_apply_transpose
from benchopt_bilevel.optim import check_outer_optimizer, outer_optimizer
from benchopt_bilevel.params import ours, paper
from benchopt_bilevel.solver import Choice, IntRange, LogUniform, Solver

BACKWARDS = ("implicit", "shine", "jfb", "capped")


@dataclass
class DEQParams:
    # implicit | shine | jfb | capped
    backward: str = paper("implicit", "Bai et al. 2019, §3.1: implicit backward by Broyden")
    forward_iters: int = paper(18, "MDEQ's CIFAR-10 setting, f_thres = 18 (Bai et al. 2020, from memory)")
    backward_iters: int = paper(20, "MDEQ's CIFAR-10 setting, b_thres = 20 (Bai et al. 2020, from memory)")
    refine: int = paper(0, "Ramzi et al. 2022: plain SHINE; refine is SHINE-refine")
    # α of the gradient-step map, on problems without their own map
    step_inner: float = ours(0.1, "no paper value: the DEQ problems state their own map")
    step_outer: float = ours(0.01, "short runs; the papers use Adam at 1e-3 with a cosine schedule on MDEQ")
    outer_optimizer: str = paper("adam", "Bai et al.: Adam")  # adam | sgd

    def __post_init__(self):
        if self.backward not in BACKWARDS:
            raise ValueError(f"backward must be one of {', '.join(BACKWARDS)}, got {self.backward!r}")
        if self.forward_iters < 1 or self.backward_iters < 1 or self.refine < 0:
            raise ValueError("need forward_iters >= 1, backward_iters >= 1 and refine >= 0")
        check_outer_optimizer(self.outer_optimizer)


class DEQImplicit(Solver):
    name = "deq-implicit"
    description = "Broyden fixed-point forward; implicit, SHINE, Jacobian-free or capped backward"
    reference = "Bai et al., NeurIPS 2019; Ramzi et al. (SHINE), ICLR 2022; Fung et al. (JFB), AAAI 2022"
    family = "implicit, fixed point"
    stochastic = True
    handles_episodes = True
    deviations = (
        "Forward and backward run fixed iteration counts, not to a tolerance (a pure step has a "
        "fixed cost).",
        "No inner optimizer choice: the forward pass is Broyden's method, whose inverse estimate "
        "the SHINE backward reuses.",
    )
    Params = DEQParams
    # Broyden's low-rank estimate holds one pair per iteration (its shape is the iteration count)
    # and refine chooses a branch: constants of a fast build.
    static_params = ("forward_iters", "backward_iters", "refine")
    search_space = {"step_outer": LogUniform(1e-4, 1e-1), "backward": Choice(BACKWARDS),
                    "forward_iters": IntRange(5, 40), "backward_iters": IntRange(1, 40)}

    def __init__(self, params=None, **overrides):
        super().__init__(params, **overrides)
        self.outer = outer_optimizer(self.params.outer_optimizer, self.params.step_outer)

    def oracle_cost(self, facts):
        p = self.params
        backward = {"implicit": p.backward_iters + 1, "shine": p.refine + 1 if p.refine else 0,
                    "jfb": 0, "capped": p.backward_iters}[p.backward]
        return {"grad_inner": p.forward_iters + 1, "grad_outer": 1, "hvp": backward + 1, "cross": 1}

    def init(self, oracles, x, y, key):
        return self.initial_state(x, y, key, **self.outer.init(x))

    def backward_direction(self, oracles, x, y, batch, grad_y_f, estimate, rows):
        """w ≈ (I − Jᵀ)⁻¹ ∇_y f by the chosen rule; rows = the independent rows of y."""
        p = self.params
        b = grad_y_f.reshape(rows, -1)
        adjoint_map = lambda w: (oracles.fixed_point_vjp_y(x, y, w.reshape(-1), batch, p.step_inner)  # noqa: E731
                                 .reshape(rows, -1) + b)
        if p.backward == "jfb":
            return grad_y_f
        if p.backward == "capped":
            (w,) = repeat(p.backward_iters, lambda carry: (adjoint_map(carry[0]),), (b,))
            return w.reshape(-1)
        if p.backward == "shine":
            w = -inverse_apply_transpose(estimate, b)
            if p.refine:
                w, _, _ = broyden(adjoint_map, w, p.refine, initial=(estimate[1], estimate[0]))
            return w.reshape(-1)
        w, _, _ = broyden(adjoint_map, torch.zeros_like(b), p.backward_iters)
        return w.reshape(-1)

    def step(self, oracles, state):
        p = self.params
        x, key = state["x"], state["key"]
        episodic = oracles.episodic
        rows = oracles.y_rows
        key, k_inner, k_outer = rng.split(key, 3)
        batch = oracles.sample_inner(k_inner)
        outer_batch = batch if episodic else oracles.sample_outer(k_outer)
        y0 = oracles.y_start(x, batch) if episodic else state["y"]
        def forward_map(z):
            return oracles.fixed_point_map(x, z.reshape(-1), batch, p.step_inner).reshape(rows, -1)

        z, estimate, _ = broyden(forward_map, y0.reshape(rows, -1), p.forward_iters)
        y = z.reshape(-1)
        grad_x_f, grad_y_f = oracles.grad_outer(x, y, outer_batch)
        w = self.backward_direction(oracles, x, y, batch, grad_y_f, estimate, rows)
        _, jx_w = oracles.fixed_point_vjp(x, y, w, batch, p.step_inner)
        hypergradient = grad_x_f + jx_w
        update, opt_state = self.outer.update(hypergradient, state)
        return {"x": x - update, **opt_state, "y": y, "key": key, "hypergradient": hypergradient}
