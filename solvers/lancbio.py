"""LancBiO: a Lanczos basis grown by one vector per outer step approximates A⁻¹b dynamically.

Outer step k = 1, 2, ... (one solver step), with A = ∇²_yy g(x, y) and b = ∇_y f(x, y):

    θ_k = max(θ_min, θ / k^a),  λ_k = max(λ_min, λ / k^b)        (a = b = 0: constant steps)
    y ← T steps y ← y − θ_k ∇_y g(x, y) (warm start)
    every `dim_freq` steps (k mod dim_freq = dim_freq − 1):  m ← min(⌈m · dim_growth⌉, dim_max)
    restart (k mod m = 1, or m = 1):  v̄ = v,  w = A v̄,  q₁ = (b − w)/‖b − w‖,  empty basis Q, T
    one Lanczos step with the current A:  α_j = q_jᵀ(A q_j − β_{j−1} q_{j−1}),
        β_j q_{j+1} = A q_j − α_j q_j − β_{j−1} q_{j−1};  T_j tridiagonal (α, β)
    v = v̄ + Q_jᵀ T_j⁻¹ Q_j (b − w)      (a j×j tridiagonal solve, j ≤ m)
    x ← x − λ_k (∇_x f(x, y) − ∇²_xy g(x, y) v)

so the subspace grows by one vector per outer step up to m, restarting every m steps, and m itself
grows from 1 to dim_max along the run (the authors' dynamic process). The residual b − w of the
anchor corrects for b moving with (x, y) between restarts. A breakdown (β ≈ 0: the basis already
spans A⁻¹(b − w)) freezes the basis until the next restart. The basis lives in fixed slots
(`basis_slots`: as many as a cycle can hold) and the restart is a mask, so the step has a fixed
cost and no branch on a tensor: A v̄ is computed at every step and kept only at a restart.

Oracle cost per step (full batch): T grad_inner (inner="sgd"; otherwise that inner optimizer's
cost), 2 hvp (A v̄ and A q_j), 1 cross, 1 grad_outer.

Reference: Y. Yang, B. Gao, Y. Yuan. "LancBiO: dynamic Lanczos-aided bilevel optimization via
Krylov subspace", ICLR 2025, arXiv 2404.03331; authors' code UCAS-YanYang/LancBiO
(Code/SyntheticProblem: solvers/LancBiO.py and the settings of main.py).
"""
import math
from dataclasses import dataclass

import torch

from benchopt_bilevel import inner as inner_lib
from benchopt_bilevel import stochastic_inner
from benchopt_bilevel.errors import UserError
from benchopt_bilevel.hypergradient import implicit_hypergradient
from benchopt_bilevel.linalg import lanczos_coefficients, lanczos_extend, lanczos_start
from benchopt_bilevel.params import ours, paper
from benchopt_bilevel.solver import IntRange, LogUniform, Solver

AUTHORS = "authors' code, Code/SyntheticProblem/main.py"


@dataclass
class LancBiOParams:
    step_inner: float = ours(0.1, "the authors' θ is tuned per problem (1e-5 synthetic, 0.1 hyper-cleaning)")
    step_outer: float = ours(0.1, "the authors' λ is tuned per problem (1 synthetic, 500 hyper-cleaning)")
    decay_inner: float = paper(0.0, AUTHORS + ": a = 0, θ_k = θ / k^a")
    decay_outer: float = paper(0.0, AUTHORS + ": b = 0, λ_k = λ / k^b")
    min_step_inner: float = paper(0.0, AUTHORS + ": min_theta")
    min_step_outer: float = paper(0.0, AUTHORS + ": min_lam")
    n_inner_steps: int = paper(5, AUTHORS + ": T = 5")
    dim_start: int = paper(1, AUTHORS + ": m = 1")
    dim_max: int = paper(80, AUTHORS + ": dim_max = 80")
    dim_growth: float = paper(1.1, AUTHORS + ": dim_inc = 1.1")
    dim_freq: int = paper(20, AUTHORS + ": dim_fre = 20")
    inner: str = paper("sgd", "Alg. 1: gradient descent on the inner problem")

    def __post_init__(self):
        if self.n_inner_steps < 0 or self.dim_start < 1 or self.dim_max < self.dim_start or self.dim_freq < 1:
            raise ValueError("need n_inner_steps >= 0, 1 <= dim_start <= dim_max and dim_freq >= 1")
        if self.step_inner <= 0 or self.step_outer <= 0 or self.dim_growth < 1:
            raise ValueError("step sizes must be positive and dim_growth >= 1")
        if min(self.decay_inner, self.decay_outer, self.min_step_inner, self.min_step_outer) < 0:
            raise ValueError("decay exponents and minimum steps must be >= 0")


def basis_slots(p: LancBiOParams) -> int:
    """The most vectors the basis holds between two restarts: m, except that a cycle which m's
    growth overtakes runs until the next k ≡ 1 (mod new m) and can hold more (the authors' rule;
    8 with m = 1 → 6, ×1.5 every 4 steps; 80 with the defaults). Counted over the schedule until m
    stops growing; past 10⁶ steps to count, the bound 2·dim_max − 1 of one growth per cycle."""
    if p.dim_max * p.dim_freq > 10**6:
        return 2 * p.dim_max - 1
    m, size, most = p.dim_start, 0, 1
    for k in range(1, p.dim_max * p.dim_freq + 2 * p.dim_max + 1):
        if k % p.dim_freq == p.dim_freq - 1:
            m = min(math.ceil(m * p.dim_growth), p.dim_max)
        size = 1 if (k % m == 1 or m == 1) else size + 1
        most = max(most, size)
    return most


def decayed(step: float, power: float, minimum: float, k: torch.Tensor) -> torch.Tensor:
    """max(minimum, step / k^power), k = 1, 2, ... (the authors' schedule)."""
    return torch.clamp(step / k ** power, min=minimum)


class LancBiO(Solver):
    name = "lancbio"
    description = "Implicit hypergradient from a Lanczos basis grown by one vector per outer step"
    reference = "Yang, Gao, Yuan, ICLR 2025, arXiv 2404.03331"
    family = "implicit, subspace"
    stochastic = False
    deviations = (
        "The restart's product A v̄ is computed at every outer step and kept only at a restart "
        "(a pure step has a fixed cost), so an outer step costs 2 Hessian-vector products where "
        "the authors' costs 1 + 1/m.",
        "The authors run the hyper-cleaning experiments with a sliding window for 250 epochs "
        "then the residual-restart process; here the restarted process of their synthetic "
        "experiments is used throughout.",
    )
    Params = LancBiOParams
    # dim_start, dim_max, dim_freq and dim_growth set how many basis slots a cycle can need
    # (`basis_slots`), i.e. the shapes of the state: they shape the graph, so a fast build keeps
    # them constants. n_inner_steps is a loop count and stays an input.
    static_params = ("dim_start", "dim_max", "dim_freq", "dim_growth")
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "step_outer": LogUniform(1e-3, 1.0),
                    "n_inner_steps": IntRange(1, 20), "dim_max": IntRange(1, 80)}

    def __init__(self, params=None, **overrides):
        super().__init__(params, **overrides)
        if self.params.inner not in stochastic_inner.INNER_OPTIMIZERS:
            raise UserError(f"lancbio: unknown inner optimizer {self.params.inner!r}; choose one of "
                            f"{', '.join(stochastic_inner.INNER_OPTIMIZERS)}")
        self.slots = basis_slots(self.params)

    def oracle_cost(self, facts):
        p = self.params
        return {**inner_cost(p.inner, p.n_inner_steps), "hvp_full": 2, "cross_full": 1, "grad_outer_full": 1}

    def init(self, oracles, x, y, key):
        p = self.params
        basis = lanczos_start(torch.zeros_like(y), self.slots)
        return self.initial_state(x, y, key, t=self.counter(x), v=torch.zeros_like(y),
                                  anchor=torch.zeros_like(y), w=torch.zeros_like(y),
                                  dim=torch.full((), float(p.dim_start), dtype=x.dtype, device=x.device),
                                  **{"basis_" + k: v for k, v in basis.items()})

    def step(self, oracles, state):
        p = self.params
        x, key, k = state["x"], state["key"], state["t"] + 1
        theta = decayed(p.step_inner, p.decay_inner, p.min_step_inner, k)
        lam = decayed(p.step_outer, p.decay_outer, p.min_step_outer, k)
        y, key = inner_solve(oracles, x, state["y"], key, p.inner, p.n_inner_steps, theta)
        grad_x_f, b = oracles.grad_outer(x, y, None)

        grow = torch.remainder(k, p.dim_freq) == p.dim_freq - 1
        dim = torch.where(grow, torch.clamp(torch.ceil(state["dim"] * p.dim_growth), max=p.dim_max), state["dim"])
        restart = (torch.remainder(k, dim) == 1) | (dim == 1)
        # Restart from the current v: its residual with the current Hessian starts a new basis.
        w_new = oracles.hvp_inner(x, y, state["v"], None)
        fresh = lanczos_start(b - w_new, self.slots)
        basis = {name: torch.where(restart, fresh[name], state["basis_" + name]) for name in fresh}
        anchor = torch.where(restart, state["v"], state["anchor"])
        w = torch.where(restart, w_new, state["w"])

        basis = lanczos_extend(basis, oracles.hvp_inner(x, y, basis["q"].reshape(y.shape), None))
        v = anchor + (basis["Q"].T @ lanczos_coefficients(basis, b - w)).reshape(y.shape)
        hypergradient = implicit_hypergradient(oracles, x, y, v, None, grad_x_f)
        return {"x": x - lam * hypergradient, "y": y, "key": key, "hypergradient": hypergradient,
                "t": k, "v": v, "anchor": anchor, "w": w, "dim": dim,
                **{"basis_" + name: value for name, value in basis.items()}}


def inner_solve(oracles, x, y, key, name: str, n_steps: int, step):
    """The inner loop: "sgd" is the paper's full-batch gradient descent; the other inner
    optimizers draw their mini-batches from `key` (AI-SARAH without a step, as its paper)."""
    if name == "sgd":
        return inner_lib.gradient_descent(oracles, x, y, n_steps, step), key
    step = math.inf if name == "ai_sarah" else step
    return stochastic_inner.INNER_OPTIMIZERS[name](oracles, x, y, key, n_steps, step)


def inner_cost(name: str, n_steps: int) -> dict[str, float]:
    """The oracle calls of `inner_solve`: full-batch gradients for "sgd"."""
    if name == "sgd":
        return {"grad_inner_full": n_steps}
    return stochastic_inner.oracle_cost(name, n_steps)
