"""F2SA: fully first-order stochastic approximation (Kwon et al., 2023).

Penalty reformulation min_x max... with multiplier λ_k growing by δ per step (capped):
z tracks argmin_y g(x, ·), y tracks argmin_y f(x, ·) + λ g(x, ·):

    T times (fresh mini-batches each):  z ← z − α ∇_y g(x, z; B)
                                        y ← y − (α / λ) (∇_y f(x, y; B') + λ ∇_y g(x, y; B))
    d_x = ∇_x f(x, y; B') + λ (∇_x g(x, y; B) − ∇_x g(x, z; B))
    x ← x − γ d_x,   λ ← min(λ + δ, λ_max)

(the step α/λ on y matches the λ·L_g smoothness of the penalized objective). No second order.

Oracle cost per step: T grad_outer + 2T grad_inner (inner loop) + 2 grad_inner + 1 grad_outer.

Reference: J. Kwon, D. Kwon, S. Wright, R. Nowak. "A fully first-order method for stochastic
bilevel optimization", ICML 2023, arXiv 2301.10945.
"""
from dataclasses import dataclass

import torch

from benchopt_bilevel import rng
from benchopt_bilevel.solver import LogUniform, Solver


@dataclass
class F2SAParams:
    step_inner: float = 0.1  # α
    outer_ratio: float = 1.0  # γ = α · outer_ratio
    n_inner_steps: int = 10  # T
    lambda0: float = 1.0
    delta_lambda: float = 0.01  # δ
    lambda_max: float = 1e3

    def __post_init__(self):
        if self.n_inner_steps < 1:
            raise ValueError("n_inner_steps must be at least 1")
        if self.lambda0 <= 0 or self.lambda_max < self.lambda0:
            raise ValueError("need 0 < lambda0 <= lambda_max")


class F2SA(Solver):
    name = "f2sa"
    description = "Fully first-order penalty method with a growing multiplier"
    reference = "Kwon et al., ICML 2023, arXiv 2301.10945"
    family = "first order"
    stochastic = True
    needs_second_order = False
    Params = F2SAParams
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "outer_ratio": LogUniform(1e-2, 10.0),
                    "delta_lambda": LogUniform(1e-4, 1.0)}

    def oracle_cost(self, facts):
        t = self.params.n_inner_steps
        return {"grad_inner": 2 * t + 2, "grad_outer": t + 1}

    def init(self, oracles, x, y, key):
        lam = torch.full((), self.params.lambda0, dtype=x.dtype, device=x.device)
        return self.initial_state(x, y, key, z=y, lam=lam)

    def step(self, oracles, state):
        p = self.params
        x, y, z, lam, key = state["x"], state["y"], state["z"], state["lam"], state["key"]
        for _ in range(p.n_inner_steps):
            key, k_inner, k_outer = rng.split(key, 3)
            batch, outer_batch = oracles.sample_inner(k_inner), oracles.sample_outer(k_outer)
            z = oracles.project_y(z - p.step_inner * oracles.grad_inner_y(x, z, batch))
            y = oracles.project_y(y - (p.step_inner / lam) * (
                oracles.grad_outer_y(x, y, outer_batch) + lam * oracles.grad_inner_y(x, y, batch)))
        key, k_inner, k_outer = rng.split(key, 3)
        batch, outer_batch = oracles.sample_inner(k_inner), oracles.sample_outer(k_outer)
        d_x = oracles.grad_outer_x(x, y, outer_batch) + lam * (
            oracles.grad_inner_x(x, y, batch) - oracles.grad_inner_x(x, z, batch))
        return {"x": x - p.step_inner * p.outer_ratio * d_x, "y": y, "z": z,
                "lam": torch.clamp(lam + p.delta_lambda, max=p.lambda_max), "key": key,
                "hypergradient": d_x}
