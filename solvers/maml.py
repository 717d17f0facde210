"""MAML: meta-gradients by reverse-mode unrolling of the inner gradient steps (or first order).

For each of the step's n_tasks tasks (batches) i, with θ = x and y_0 = y_start(θ) (a task's
start; on a problem that is not episodic, the previous y, whose dependence on θ is ignored):

    y_{t+1} = y_t − α ∇_y g_i(θ, y_t),  t < T
    d ← ∇_x f_i(θ, y_T),  p ← ∇_y f_i(θ, y_T)
    exact:        for t = T−1 … 0:  d ← d − α ∇²_xy g_i(θ, y_t) p,  p ← p − α ∇²_yy g_i(θ, y_t) p
    first_order:  (FOMAML) the Jacobian of the inner steps is taken as the identity
    d ← d + pᵀ ∂y_0/∂θ (episodic problems);   θ ← Adam or SGD step along mean_i d.

On the few-shot problem with reg = 0 and inner=imaml this is MAML; with inner=anil it is ANIL
(only the head adapts).

Oracle cost per step: n_tasks · (T grad_inner, 1 grad_outer, and T hvp + T cross unless
first_order).

References: C. Finn, P. Abbeel, S. Levine. "Model-agnostic meta-learning for fast adaptation of
deep networks", ICML 2017, arXiv 1703.03400 (T = 5 inner steps, meta-batch 4 to 32, Adam at
1e-3; our default meta rate is iMAML's 0.01, which meets the conformance budget of 1000 steps);
A. Raghu, M. Raghu, S. Bengio, O. Vinyals. "Rapid learning or feature reuse? Towards
understanding the effectiveness of MAML" (ANIL), ICLR 2020, arXiv 1909.09157.
"""
from dataclasses import dataclass

import torch

from benchopt_bilevel import inner, rng
from benchopt_bilevel.errors import UserError
from benchopt_bilevel.linalg import repeat
from benchopt_bilevel.optim import check_outer_optimizer, outer_optimizer
from benchopt_bilevel.params import ours, paper
from benchopt_bilevel.solver import Choice, IntRange, LogUniform, Solver


@dataclass
class MAMLParams:
    step_inner: float = ours(0.1, "between the paper's α = 0.4 (Omniglot) and 0.01 (MiniImagenet), §5.2")
    n_inner_steps: int = paper(5, "§5.2, MiniImagenet: 5 inner steps")
    n_tasks: int = paper(4, "§5.2, MiniImagenet 5-way 1-shot: meta-batch of 4 tasks")
    step_outer: float = ours(0.01, "iMAML's meta rate; the paper's Adam at 1e-3 is slow for the conformance budget")
    outer_optimizer: str = paper("adam", "§5: Adam as the meta-optimizer")
    first_order: bool = paper(False, "§5.2: the full second-order meta-gradient (first order: FOMAML)")
    inner: str = paper("sgd", "Alg. 2: gradient steps on each task, differentiated through")

    def __post_init__(self):
        if self.n_inner_steps < 1 or self.n_tasks < 1:
            raise ValueError("need n_inner_steps >= 1 and n_tasks >= 1")
        check_outer_optimizer(self.outer_optimizer)


class MAML(Solver):
    name = "maml"
    description = "Meta-gradient by reverse-mode unrolling of inner steps from a per-task start (or first order)"
    reference = "Finn, Abbeel & Levine, ICML 2017, arXiv 1703.03400; Raghu et al. (ANIL), ICLR 2020"
    family = "unrolled, meta-learning"
    stochastic = True
    handles_episodes = True
    deviations = (
        "inner accepts only sgd: the meta-gradient backpropagates through the inner gradient "
        "steps on the task's batch, which AI-SARAH and SRKC (their own batches, adaptive steps, "
        "stages) do not provide a reverse pass for.",
    )
    Params = MAMLParams
    # The second-order meta-gradient keeps every inner iterate for the reverse sweep: the inner
    # steps are unrolled, so their count is a constant of a fast build (n_tasks is a loop count).
    static_params = ("n_inner_steps",)
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "step_outer": LogUniform(1e-4, 1e-1),
                    "n_inner_steps": IntRange(1, 10), "outer_optimizer": Choice(("adam", "sgd"))}

    @property
    def needs_second_order(self):
        return not self.params.first_order

    def __init__(self, params=None, **overrides):
        super().__init__(params, **overrides)
        if self.params.inner != "sgd":
            raise UserError(f"maml: inner={self.params.inner!r} is not available: MAML differentiates "
                            "through its inner gradient steps on the task's batch; use inner=sgd")
        self.outer = outer_optimizer(self.params.outer_optimizer, self.params.step_outer)

    def oracle_cost(self, facts):
        p = self.params
        cost = {"grad_inner": p.n_tasks * p.n_inner_steps, "grad_outer": p.n_tasks}
        if not p.first_order:
            cost.update(hvp=p.n_tasks * p.n_inner_steps, cross=p.n_tasks * p.n_inner_steps)
        return cost

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
            y0 = oracles.y_start(x, batch) if episodic else y
            if p.first_order:  # no reverse sweep: the inner steps are one loop body
                y = inner.gradient_descent(oracles, x, y0, p.n_inner_steps, p.step_inner, batch)
                d, adjoint = oracles.grad_outer(x, y, outer_batch)
            else:
                # The reverse sweep needs every iterate y_t of the forward steps: both stay
                # unrolled (T bodies each in a fast build; T ≤ 10 in the search space).
                path = inner.gradient_descent_path(oracles, x, y0, p.n_inner_steps, p.step_inner, batch)
                y = path[-1]
                d, adjoint = oracles.grad_outer(x, y, outer_batch)
                for y_t in reversed(path[:-1]):
                    hvp, cross = oracles.hvp_cross_inner(x, y_t, adjoint, batch)
                    d = d - p.step_inner * cross
                    adjoint = adjoint - p.step_inner * hvp
            if episodic:
                d = d + oracles.y_start_vjp(x, batch, adjoint)
            return key, y, total + d

        # The tasks are one loop body (a while_loop in a fast build: one task in the graph).
        key, y, total = repeat(p.n_tasks, one_task, (key, y, torch.zeros_like(x)))
        hypergradient = total / p.n_tasks
        update, opt_state = self.outer.update(hypergradient, state)
        return {"x": x - update, **opt_state, "y": y, "key": key, "hypergradient": hypergradient}
