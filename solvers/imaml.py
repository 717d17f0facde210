"""iMAML: implicit meta-gradients by a fixed number of conjugate-gradient steps.

For each of the step's n_tasks tasks (batches) i, with θ = x:

    y_i ← T gradient steps on g_i(θ, ·) from y_start(θ) (a task's start; on a problem that is not
          episodic, the previous y: warm start);
    v_i ← K CG iterations from 0 on ∇²_yy g_i(θ, y_i) v = ∇_y f_i(θ, y_i), frozen at the first
          direction of non-positive curvature (Steihaug): the task Hessians of deep networks
          away from the inner solution are indefinite even with the proximal term;
    d   ← mean_i [∇_x f_i(θ, y_i) − ∇²_xy g_i(θ, y_i) v_i];   θ ← Adam or SGD step along d.

On the proximal inner problem g_i = L_i^train(φ) + λ/2‖φ − θ‖² this is exactly the iMAML rule:
∇²_yy g = ∇²L^train + λI and ∇²_xy g = −λI, so d = λ v = (I + ∇²L^train/λ)⁻¹ ∇L^test. f and g
of a task are taken on the same batch on an episodic problem; otherwise on an inner and an
outer mini-batch drawn independently.

Oracle cost per step: n_tasks · (T grad_inner, K hvp, 1 cross, 1 grad_outer).

Reference: A. Rajeswaran, C. Finn, S. Kakade, S. Levine. "Meta-learning with implicit
gradients", NeurIPS 2019, arXiv 1909.04630 (defaults from its Omniglot script: 16 inner steps
of 0.01, 5 CG steps, 16 tasks per step, outer Adam with learning rate 0.01).
"""
from dataclasses import dataclass

import torch

from benchopt_bilevel import inner, rng
from benchopt_bilevel.nn.optim import outer_update
from benchopt_bilevel.solver import Choice, IntRange, LogUniform, Solver


def truncated_cg(matvec, b: torch.Tensor, maxiter: int) -> torch.Tensor:
    """CG from 0 for `maxiter` matvecs, frozen once a direction has pᵀAp ≤ 0 (masked, no branch)."""
    v, r = torch.zeros_like(b), b.clone()
    p, rs = r, torch.dot(r, r)
    active = torch.ones((), dtype=b.dtype, device=b.device)
    tiny = torch.finfo(b.dtype).tiny
    for _ in range(maxiter):
        ap = matvec(p)
        curvature = torch.dot(p, ap)
        active = active * (curvature > 0).to(b.dtype)
        alpha = active * rs / torch.where(curvature > 0, curvature, torch.ones_like(curvature))
        v, r = v + alpha * p, r - alpha * ap
        rs_new = torch.dot(r, r)
        p = r + active * rs_new / torch.clamp(rs, min=tiny) * p
        rs = rs_new
    return v


@dataclass
class IMAMLParams:
    step_inner: float = 0.01  # inner gradient step
    n_inner_steps: int = 16  # T
    n_cg_steps: int = 5  # K
    n_tasks: int = 16  # tasks (batches) per outer step
    step_outer: float = 0.01  # meta learning rate
    outer_optimizer: str = "adam"  # adam | sgd

    def __post_init__(self):
        if self.n_inner_steps < 0 or self.n_cg_steps < 1 or self.n_tasks < 1:
            raise ValueError("need n_inner_steps >= 0, n_cg_steps >= 1 and n_tasks >= 1")
        if self.outer_optimizer not in ("adam", "sgd"):
            raise ValueError(f"outer_optimizer must be adam or sgd, got {self.outer_optimizer!r}")


class IMAML(Solver):
    name = "imaml"
    description = "Implicit meta-gradient: per-task inner GD, fixed CG steps on the task Hessian"
    reference = "Rajeswaran et al., NeurIPS 2019, arXiv 1909.04630"
    family = "implicit, meta-learning"
    stochastic = True
    handles_episodes = True
    Params = IMAMLParams
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "step_outer": LogUniform(1e-4, 1e-1),
                    "n_inner_steps": IntRange(1, 32), "n_cg_steps": IntRange(1, 20),
                    "outer_optimizer": Choice(("adam", "sgd"))}

    def oracle_cost(self):
        p = self.params
        return {"grad_inner": p.n_tasks * p.n_inner_steps, "hvp": p.n_tasks * p.n_cg_steps,
                "cross": p.n_tasks, "grad_outer": p.n_tasks}

    def init(self, oracles, x, y, key):
        return {"x": x, "y": y, "key": key, "hypergradient": torch.zeros_like(x),
                "m": torch.zeros_like(x), "s": torch.zeros_like(x), "t": self.counter(x)}

    def step(self, oracles, state):
        p = self.params
        x, y, key = state["x"], state["y"], state["key"]
        episodic = oracles.episodic
        total = torch.zeros_like(x)
        for _ in range(p.n_tasks):
            key, k_inner, k_outer = rng.split(key, 3)
            batch = oracles.sample_inner(k_inner)
            outer_batch = batch if episodic else oracles.sample_outer(k_outer)
            y = oracles.y_start(x, batch) if episodic else y
            y = inner.gradient_descent(oracles, x, y, p.n_inner_steps, p.step_inner, batch)
            grad_x_f, grad_y_f = oracles.grad_outer(x, y, outer_batch)
            v = truncated_cg(lambda w: oracles.hvp_inner(x, y, w, batch), grad_y_f, p.n_cg_steps)
            total = total + grad_x_f - oracles.cross_inner(x, y, v, batch)
        hypergradient = total / p.n_tasks
        return {**outer_update(x, hypergradient, state, p.outer_optimizer, p.step_outer),
                "y": y, "key": key, "hypergradient": hypergradient}
