"""BiAdam: Adam-type adaptive steps on the momentum single-loop bilevel scheme (Huang, Li, Huang).

With momentum estimates w (hypergradient) and u (inner gradient) and adaptive matrices
A_t = diag(√a_t) + ρ (Adam's second moment of the hypergradient estimate, coordinate-wise) and
B_t = max(b_t, ρ) I (a scalar, norm-based, for the strongly convex inner problem):

    x ← x + η_t (x̃ − x),  x̃ = x − γ A_t⁻¹ w;      y ← y + η_t (ỹ − y),  ỹ = y − λ B_t⁻¹ u
    Φ = ∇_x f(x, y; B') − ∇²_xy g(x, y; B) · Q η Π_{j≤p}(I − η ∇²_yy g(x, y; B_j)) ∇_y f(x, y; B')
    w ← μ_t Φ + (1 − μ_t) w,      u ← ν_t ∇_y g(x, y; B) + (1 − ν_t) u
    a ← ϱ a + (1 − ϱ) Φ²,         b ← ϱ b + (1 − ϱ) ‖∇_y g(x, y; B)‖

with η_t = 1/√(t+1), μ_t = min(1, c η_t), ν_t = min(1, c η_t) (the paper's η_t = k/(m+t)^{1/2}
with k = m = 1) and p ~ U{0, …, Q−1}, Ghadimi & Wang's random-length Neumann estimate (only the
p drawn products are computed, `linalg.repeat`: a pure, compilable step). The estimates are
initialized with one sample at the starting point, as in the paper's Algorithm 1 (counted in
the initialization).

Oracle cost per step: 1 grad_inner, (Q−1)/2 hvp on average, 1 cross, 1 grad_outer; the
initialization costs one step.

Reference: F. Huang, J. Li, H. Huang. "BiAdam: fast adaptive bilevel optimization methods",
arXiv 2106.11396, 2021 (Algorithm 1, BiAdam, with the unified adaptive matrices of SUPER-ADAM).
"""
from dataclasses import dataclass

import torch

from benchopt_bilevel import rng
from benchopt_bilevel.hypergradient import implicit_hypergradient, sampled_hessian_matvec
from benchopt_bilevel.linalg import random_neumann_product
from benchopt_bilevel.params import ours, paper
from benchopt_bilevel.schedules import make_schedule
from benchopt_bilevel.solver import IntRange, LogUniform, Solver


@dataclass
class BiAdamParams:
    step_outer: float = ours(0.1, "the reference benchmark's step_size for its Neumann methods")  # γ
    step_inner: float = ours(0.1, "the reference benchmark's step_size for its Neumann methods")  # λ, and η
    momentum: float = ours(1.0, "μ_t = η_t: a plain 1/√t average, no extra constant")  # c: μ_t = ν_t = min(1, c η_t)
    beta: float = ours(0.9, "Adam's usual second-moment averaging")  # ϱ, the averaging of the adaptive matrices
    eps: float = ours(0.1, "adaptive steps at most 10 γ (or 10 λ)")  # ρ, lower bound of the adaptive matrices
    n_neumann_terms: int = ours(10, "the reference benchmark's n_hia_steps (BSA, TTSA, SUSTAIN)")  # Q
    decay: float = paper(0.5, "Theorem 1: η_t = k/(m+t)^(1/2), here k = m = 1 (recalled)")  # η_t = 1/(t+1)^decay

    def __post_init__(self):
        if self.n_neumann_terms < 1 or not 0 <= self.beta < 1 or self.eps <= 0:
            raise ValueError("need n_neumann_terms >= 1, 0 <= beta < 1 and eps > 0")


class BiAdam(Solver):
    name = "biadam"
    description = "Adam-type adaptive steps on both levels of a momentum single-loop method"
    reference = "F. Huang, J. Li, H. Huang, BiAdam: fast adaptive bilevel optimization methods, arXiv 2106.11396"
    family = "adaptive"
    stochastic = True
    deviations = (
        "η_t = 1/√(t+1): the paper's k/(m+t)^(1/2) with k = m = 1 rather than the constants of its "
        "analysis, and μ_t = ν_t = min(1, c η_t) with one constant c for both levels.",
        "The Neumann step η is the inner step λ and the length Q is fixed.",
    )
    # The Neumann length p ~ U{0, …, Q−1} is drawn at every step: the hvp calls counted are the
    # drawn ones and oracle_cost declares their expectation.
    random_cost = "a random Neumann length per step; oracle_cost declares the expected hvp calls"
    Params = BiAdamParams
    search_space = {"step_outer": LogUniform(1e-3, 1.0), "step_inner": LogUniform(1e-3, 1.0),
                    "momentum": LogUniform(0.1, 10.0), "eps": LogUniform(1e-3, 1.0),
                    "n_neumann_terms": IntRange(1, 30)}

    def __init__(self, params=None, **overrides):
        super().__init__(params, **overrides)
        self.eta = make_schedule(1.0, self.params.decay)

    def oracle_cost(self, facts):
        # the Neumann products at their expected count E[p] = (Q−1)/2; the calls counted are the drawn ones
        return {"grad_inner": 1, "hvp": (self.params.n_neumann_terms - 1) / 2, "cross": 1, "grad_outer": 1}

    def estimates(self, oracles, x, y, key):
        """(Φ, ∇_y g) at (x, y) on fresh batches, and the new key."""
        p = self.params
        key, k_inner, k_outer = rng.split(key, 3)
        inner_batch = oracles.sample_inner(k_inner)
        grad_y_g = oracles.grad_inner_y(x, y, inner_batch)
        grad_x_f, grad_y_f = oracles.grad_outer(x, y, oracles.sample_outer(k_outer))
        (v,), key = random_neumann_product(sampled_hessian_matvec(oracles, [(x, y)]), [grad_y_f], key=key,
                                           n_terms=p.n_neumann_terms, step=p.step_inner)
        return implicit_hypergradient(oracles, x, y, v, inner_batch, grad_x_f), grad_y_g, key

    def init(self, oracles, x, y, key):
        phi, grad_y_g, key = self.estimates(oracles, x, y, key)
        return {"x": x, "y": y, "w": phi, "u": grad_y_g, "a": phi ** 2,
                "b": torch.linalg.vector_norm(grad_y_g), "key": key, "t": self.counter(x), "hypergradient": phi}

    def step(self, oracles, state):
        p = self.params
        t = state["t"]
        eta = torch.as_tensor(self.eta(t), dtype=t.dtype, device=t.device)
        weight = torch.clamp(p.momentum * eta, max=1.0)
        a_matrix = torch.sqrt(state["a"]) + p.eps
        b_scalar = torch.clamp(state["b"], min=p.eps)
        x = state["x"] - eta * p.step_outer * state["w"] / a_matrix
        y = state["y"] - eta * p.step_inner * state["u"] / b_scalar
        phi, grad_y_g, key = self.estimates(oracles, x, y, state["key"])
        return {
            "x": x, "y": y,
            "w": weight * phi + (1 - weight) * state["w"],
            "u": weight * grad_y_g + (1 - weight) * state["u"],
            "a": p.beta * state["a"] + (1 - p.beta) * phi ** 2,
            # .to: in a fast build β is a float64 0-dim tensor, which promotes the 0-dim b (a no-op eager)
            "b": (p.beta * state["b"] + (1 - p.beta) * torch.linalg.vector_norm(grad_y_g)).to(state["b"].dtype),
            "key": key, "t": t + 1, "hypergradient": phi,
        }
