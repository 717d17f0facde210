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
from benchopt_bilevel.hypergradient import hessian_matvec, implicit_hypergradient
from benchopt_bilevel.linalg import conjugate_gradient
from benchopt_bilevel.optim import check_outer_optimizer, outer_optimizer
from benchopt_bilevel.solver import Choice, IntRange, LogUniform, Solver


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
        check_outer_optimizer(self.outer_optimizer)


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

    def __init__(self, params=None, **overrides):
        super().__init__(params, **overrides)
        self.outer = outer_optimizer(self.params.outer_optimizer, self.params.step_outer)

    def oracle_cost(self, facts):
        p = self.params
        return {"grad_inner": p.n_tasks * p.n_inner_steps, "hvp": p.n_tasks * p.n_cg_steps,
                "cross": p.n_tasks, "grad_outer": p.n_tasks}

    def init(self, oracles, x, y, key):
        return self.initial_state(x, y, key, **self.outer.init(x))

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
            v = conjugate_gradient(hessian_matvec(oracles, x, y, batch), grad_y_f, maxiter=p.n_cg_steps,
                                   stop_at_negative_curvature=True)
            total = total + implicit_hypergradient(oracles, x, y, v, batch, grad_x_f)
        hypergradient = total / p.n_tasks
        update, opt_state = self.outer.update(hypergradient, state)
        return {"x": x - update, **opt_state, "y": y, "key": key, "hypergradient": hypergradient}
