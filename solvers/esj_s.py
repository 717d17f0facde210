"""ESJ-S: the stochastic (mini-batch) version of ESJ / PZOBO.

As ESJ, with T SGD steps on fresh inner mini-batches B_1 … B_T; the Q perturbed runs reuse the
same batches (common random numbers), so δ_q measures how the SGD path moves with x and not
the difference between two draws of noise; ∇f on one outer mini-batch B':

    y_T(x) ← SGD on B_1 … B_T;   y_T(x + μ u_q) ← the same from the same start, u_q ~ N(0, I)
    d = ∇_x f(x, y_T; B') + (1/Q) Σ_q ⟨(y_T(x + μu_q) − y_T(x)) / μ, ∇_y f(x, y_T; B')⟩ u_q
    x ← x − γ d

Oracle cost per step: (Q + 1)·T grad_inner, 1 grad_outer.

Reference: D. Sow, K. Ji, Y. Liang. "On the convergence theory for Hessian-free bilevel
algorithms", NeurIPS 2022, arXiv 2110.07004.
"""
from benchopt_bilevel import rng

from .esj import ESJ, es_hypergradient, perturbed_differences


class ESJS(ESJ):
    name = "esj-s"
    description = "Stochastic ESJ: mini-batch inner SGD, perturbed runs on the same batches"
    stochastic = True

    def oracle_cost(self, facts):
        p = self.params
        return {"grad_inner": (p.n_directions + 1) * p.n_inner_steps, "grad_outer": 1}

    def step(self, oracles, state):
        p = self.params
        x = state["x"]
        key, k_directions, k_outer, *k_inner = rng.split(state["key"], 3 + p.n_inner_steps)
        directions = rng.normal(k_directions, (p.n_directions, x.numel()), x.dtype)
        batches = [oracles.sample_inner(k) for k in k_inner]
        y, differences = perturbed_differences(oracles, x, state["y"], directions, p.smoothing,
                                               p.step_inner, batches)
        grad_x_f, grad_y_f = oracles.grad_outer(x, y, oracles.sample_outer(k_outer))
        d = es_hypergradient(grad_x_f, grad_y_f, directions, differences)
        return {"x": x - p.step_inner * p.outer_ratio * d, "y": y, "key": key, "hypergradient": d}
