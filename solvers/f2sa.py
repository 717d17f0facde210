"""F2SA: fully first-order stochastic approximation (Kwon et al., 2023).

Penalty reformulation min_x max_z min_y f(x, y) + λ (g(x, y) − g(x, z)) with a multiplier that
grows as a power of the step: z tracks argmin_y g(x, ·) and y tracks argmin_y f(x, ·) + λ g(x, ·).
At outer step k (t = k + 1), with a = 5/7 and c = 4/7 (the paper's exponents when both levels
are stochastic):

    γ_k = γ / t^c,   λ_k = λ_0 t^(a − c),   α_k = γ_k / λ_k = (γ / λ_0) / t^a
    T times, every gradient on its own independent mini-batch:
        z ← z − γ_k ∇_y g(x, z; B_z)                        (or the chosen inner optimizer)
        y ← y − α_k (∇_y f(x, y; B') + λ_k ∇_y g(x, y; B_y))
    d_x = ∇_x f(x, y; B'') + λ_k (∇_x g(x, y; B_1) − ∇_x g(x, z; B_2))
    x ← x − ξ α_k d_x,   ξ = 1 / outer_ratio

α_k = γ_k / λ_k gives y's g-part the step of z (the penalized objective is λ_k L_g smooth), the
coupling λ_k ∝ γ_k / α_k of the paper's step-size design. No second order.

Oracle cost per step: T grad_inner for z (inner="sgd"; otherwise that inner optimizer's cost),
T + 2 grad_inner and T + 1 grad_outer for y and d_x.

Reference: J. Kwon, D. Kwon, S. Wright, R. Nowak. "A fully first-order method for stochastic
bilevel optimization", ICML 2023, arXiv 2301.10945.
"""
import math
from dataclasses import dataclass

import torch

from benchopt_bilevel import rng, stochastic_inner
from benchopt_bilevel.errors import UserError
from benchopt_bilevel.linalg import repeat, switch
from benchopt_bilevel.params import ours, paper, reference
from benchopt_bilevel.solver import LogUniform, Solver

Tensor = torch.Tensor
SCHEDULE = "Thm 3.1, α_k ∝ k^(-5/7), γ_k ∝ k^(-4/7) (theorem number from memory)"


@dataclass
class F2SAParams:
    # γ, z's step at t = 1. The reference's 0.01 (solvers/f2sa.py: step_size) leaves a relative
    # suboptimality of 0.72 after 1000 steps on the conformance quadratic under these decaying
    # steps (0.1: 0.044); 0.2 reaches 2.5e-3.
    step_inner: float = ours(0.2, "reference's 0.01 too slow under the paper's decaying steps")
    outer_ratio: float = reference(1.0, "solvers/f2sa.py: outer_ratio")  # ξ = 1 / outer_ratio
    n_inner_steps: int = reference(10, "solvers/f2sa.py: n_inner_steps")  # T
    lambda0: float = reference(1.0, "solvers/f2sa.py: lmbda0")  # λ_0
    decay_y: float = paper(5 / 7, SCHEDULE)  # a: α_k (y and x) ∝ t^(-a)
    decay_z: float = paper(4 / 7, SCHEDULE)  # c: γ_k (z) ∝ t^(-c); λ_k ∝ t^(a − c)
    inner: str = paper("sgd", "Alg. 1: SGD steps on z")

    def __post_init__(self):
        if self.n_inner_steps < 1:
            raise ValueError("n_inner_steps must be at least 1")
        if self.step_inner <= 0 or self.outer_ratio <= 0 or self.lambda0 <= 0:
            raise ValueError("need step_inner, outer_ratio and lambda0 positive")


def schedule(p: F2SAParams, k: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(γ_k, λ_k, α_k) at outer step k (0-based): γ / t^c, λ_0 t^(a − c), γ_k / λ_k, t = k + 1."""
    t = k + 1.0
    gamma = p.step_inner / t ** p.decay_z
    lam = p.lambda0 * t ** (p.decay_y - p.decay_z)
    return gamma, lam, gamma / lam


def penalized_sgd(oracles, x: Tensor, y: Tensor, key: Tensor, n_steps: int, step: Tensor,
                  lam: Tensor) -> tuple[Tensor, Tensor]:
    """n_steps of y ← Π(y − step (∇_y f(x, y; B') + λ ∇_y g(x, y; B))), B' and B drawn apart."""
    def one_step(carry: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        y, key = carry
        key, k_outer, k_inner = rng.split(key, 3)
        direction = (oracles.grad_outer_y(x, y, oracles.sample_outer(k_outer))
                     + lam * oracles.grad_inner_y(x, y, oracles.sample_inner(k_inner)))
        return oracles.project_y(y - step * direction), key

    y, key = repeat(n_steps, one_step, (y, key))
    return y, key


class F2SA(Solver):
    name = "f2sa"
    description = "Fully first-order penalty method with a multiplier growing as a power of the step"
    reference = "Kwon et al., ICML 2023, arXiv 2301.10945"
    family = "first order"
    stochastic = True
    needs_second_order = False
    deviations = (
        "The reference benchmark grows λ by δ/t^(1/7) per step (λ ∝ t^(6/7)), takes y's step as "
        "step_size/t^(5/7) on ∇f + λ∇g without the 1/λ_k factor and x's as step_size/(r t^(4/7)); "
        "here λ_k = λ_0 t^(1/7), α_k = γ_k/λ_k and x's step ξα_k, as in the paper's design.",
        "The paper's α_k and γ_k are two constants tied to λ_k by its step-size design; here one "
        "constant γ (step_inner) and λ_0 fix all three.",
        "The reference's delta_lmbda has no counterpart (λ_k follows λ_0 t^(1/7)): its specs that "
        "set it do not replay here.",
    )
    reference_name = "F2SA"
    reference_params = {"step_size": "step_inner", "outer_ratio": "outer_ratio",
                        "n_inner_steps": "n_inner_steps", "lmbda0": "lambda0"}
    Params = F2SAParams
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "outer_ratio": LogUniform(1e-2, 1e2),
                    "lambda0": LogUniform(1e-1, 1e2)}
    # `inner` is a variant, not searched (Solver.search_space), and not an input choice either: a
    # fast build holding the three inner optimizers took 80 s against 30 s for one (ijcnn1,
    # docs/compile.md), and a search fixes it, so one build serves a whole search.

    def __init__(self, params=None, **overrides):
        super().__init__(params, **overrides)
        if isinstance(self.params.inner, str) and self.params.inner not in stochastic_inner.INNER_OPTIMIZERS:
            raise UserError(f"f2sa: unknown inner optimizer {self.params.inner!r}; choose one of "
                            f"{', '.join(stochastic_inner.INNER_OPTIMIZERS)}")

    def skip(self, problem):
        if self.params.inner == "ai_sarah" and not problem.twice_differentiable:
            return f"{self.name} with inner=ai_sarah takes Hessian-vector products; {problem.name} is not twice differentiable"
        return super().skip(problem)

    def oracle_cost(self, facts):
        t = self.params.n_inner_steps
        cost = dict(stochastic_inner.oracle_cost(self.params.inner, t))
        cost["grad_inner"] = cost.get("grad_inner", 0) + t + 2
        cost["grad_outer"] = t + 1
        return cost

    def init(self, oracles, x, y, key):
        return self.initial_state(x, y, key, z=y.clone(), t=self.counter(x))

    def step(self, oracles, state):
        p = self.params
        x, k = state["x"], state["t"]
        gamma, lam, alpha = schedule(p, k)
        key, k_z, k_y, k_outer, k_y_batch, k_z_batch = rng.split(state["key"], 6)

        def z_update(name):
            z_step = math.inf if name == "ai_sarah" else gamma  # AI-SARAH needs no step
            return lambda z, key: stochastic_inner.INNER_OPTIMIZERS[name](oracles, x, z, key, p.n_inner_steps, z_step)

        z, _ = switch(p.inner, {name: z_update(name) for name in stochastic_inner.INNER_OPTIMIZERS}, state["z"], k_z)
        y, _ = penalized_sgd(oracles, x, state["y"], k_y, p.n_inner_steps, alpha, lam)
        d_x = oracles.grad_outer_x(x, y, oracles.sample_outer(k_outer)) + lam * (
            oracles.grad_inner_x(x, y, oracles.sample_inner(k_y_batch))
            - oracles.grad_inner_x(x, z, oracles.sample_inner(k_z_batch)))
        return {"x": x - (alpha / p.outer_ratio) * d_x, "y": y, "z": z, "t": k + 1, "key": key,
                "hypergradient": d_x}
