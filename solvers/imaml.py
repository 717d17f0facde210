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

`inner` chooses the inner optimizer: "sgd" is gradient descent on the task's batch (the paper's);
"ai_sarah" and "srkc" draw their own mini-batches, so they apply to problems that are not
episodic only (a task's inner problem is its own batch).

Oracle cost per step: n_tasks · (T grad_inner (inner="sgd"; otherwise that inner optimizer's
cost), K hvp, 1 cross, 1 grad_outer).

Reference: A. Rajeswaran, C. Finn, S. Kakade, S. Levine. "Meta-learning with implicit
gradients", NeurIPS 2019, arXiv 1909.04630; authors' code aravindr93/imaml_dev (defaults from its
Omniglot script: 16 inner steps of 0.01, 5 CG steps, 16 tasks per step, outer Adam at 0.01).
"""
import math
from dataclasses import dataclass

import torch

from benchopt_bilevel import inner as inner_lib
from benchopt_bilevel import rng, stochastic_inner
from benchopt_bilevel.errors import UserError
from benchopt_bilevel.hypergradient import hessian_matvec, implicit_hypergradient
from benchopt_bilevel.linalg import conjugate_gradient, repeat
from benchopt_bilevel.optim import check_outer_optimizer, outer_optimizer
from benchopt_bilevel.params import paper
from benchopt_bilevel.solver import Choice, IntRange, LogUniform, Solver

SCRIPT = "authors' code, examples/omniglot_implicit_maml.py"


@dataclass
class IMAMLParams:
    step_inner: float = paper(0.01, SCRIPT + ": inner_lr = 1e-2")
    n_inner_steps: int = paper(16, SCRIPT + ": n_steps = 16")
    n_cg_steps: int = paper(5, SCRIPT + ": cg_steps = 5")
    n_tasks: int = paper(16, SCRIPT + ": task_mb_size = 16")
    step_outer: float = paper(0.01, SCRIPT + ": outer_lr = 1e-2")
    outer_optimizer: str = paper("adam", "authors' code, implicit_maml/learner_model.py: outer_alg = 'adam'")
    inner: str = paper("sgd", "Alg. 2: gradient descent on each task's proximal problem")

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
    deviations = (
        "The authors' script runs the inner steps on the training loss alone and pulls back once "
        "toward θ, and solves a damped system 2v + ∇²L v / (λ + 10) = ∇L_test; here the inner "
        "problem is the paper's proximal one and CG solves its exact Hessian (Steihaug guard).",
        "Adam keeps its usual ε = 1e-8 (the authors' meta-optimizer uses ε = 1e-3).",
    )
    Params = IMAMLParams
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "step_outer": LogUniform(1e-4, 1e-1),
                    "n_inner_steps": IntRange(1, 32), "n_cg_steps": IntRange(1, 20),
                    "outer_optimizer": Choice(("adam", "sgd"))}

    def __init__(self, params=None, **overrides):
        super().__init__(params, **overrides)
        if self.params.inner not in stochastic_inner.INNER_OPTIMIZERS:
            raise UserError(f"imaml: unknown inner optimizer {self.params.inner!r}; choose one of "
                            f"{', '.join(stochastic_inner.INNER_OPTIMIZERS)}")
        self.outer = outer_optimizer(self.params.outer_optimizer, self.params.step_outer)

    def skip(self, problem):
        if getattr(problem, "episodic", False) and self.params.inner != "sgd":
            return (f"imaml with inner={self.params.inner} draws inner mini-batches among all blocks; "
                    f"{problem.name} is episodic (a task's inner problem is its own batch): use inner=sgd")
        return super().skip(problem)

    def oracle_cost(self, facts):
        p = self.params
        inner = ({"grad_inner": p.n_inner_steps} if p.inner == "sgd"
                 else stochastic_inner.oracle_cost(p.inner, p.n_inner_steps))
        cost = {kind: p.n_tasks * count for kind, count in inner.items()}
        return {**cost, "hvp": cost.get("hvp", 0) + p.n_tasks * p.n_cg_steps,
                "cross": p.n_tasks, "grad_outer": p.n_tasks}

    def init(self, oracles, x, y, key):
        return self.initial_state(x, y, key, **self.outer.init(x))

    def step(self, oracles, state):
        p = self.params
        x, y, key = state["x"], state["y"], state["key"]
        episodic = oracles.episodic

        def one_task(carry: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
            key, y, total = carry
            key, k_inner, k_outer = rng.split(key, 3)
            batch = oracles.sample_inner(k_inner)
            outer_batch = batch if episodic else oracles.sample_outer(k_outer)
            y = oracles.y_start(x, batch) if episodic else y
            if p.inner == "sgd":  # on the task's batch
                y = inner_lib.gradient_descent(oracles, x, y, p.n_inner_steps, p.step_inner, batch)
            else:  # not episodic (skip): the optimizer draws its own batches
                step = math.inf if p.inner == "ai_sarah" else p.step_inner
                y, key = stochastic_inner.INNER_OPTIMIZERS[p.inner](oracles, x, y, key, p.n_inner_steps, step)
            grad_x_f, grad_y_f = oracles.grad_outer(x, y, outer_batch)
            v = conjugate_gradient(hessian_matvec(oracles, x, y, batch), grad_y_f, maxiter=p.n_cg_steps,
                                   stop_at_negative_curvature=True)
            return key, y, total + implicit_hypergradient(oracles, x, y, v, batch, grad_x_f)

        # The tasks are one loop body (a while_loop in a fast build: one task in the graph).
        key, y, total = repeat(p.n_tasks, one_task, (key, y, torch.zeros_like(x)))
        hypergradient = total / p.n_tasks
        update, opt_state = self.outer.update(hypergradient, state)
        return {"x": x - update, **opt_state, "y": y, "key": key, "hypergradient": hypergradient}
