"""ESJ-S: the stochastic (mini-batch) version of ESJ / PZOBO.

As ESJ, with T SGD steps on fresh inner mini-batches B_1 … B_T; the Q perturbed runs reuse the
same batches (common random numbers: one key for the Q + 1 runs), so δ_q measures how the SGD
path moves with x and not the difference between two draws of noise; ∇f on one outer
mini-batch B':

    y_T(x) ← SGD on B_1 … B_T;   y_T(x + μ u_q) ← the same from the same start, u_q ~ N(0, I)
    d = ∇_x f(x, y_T; B') + (1/Q) Σ_q ⟨(y_T(x + μu_q) − y_T(x)) / μ, ∇_y f(x, y_T; B')⟩ u_q
    x ← x − (α / r) d

Oracle cost per step: (Q + 1)·T grad_inner (inner="sgd"; otherwise Q + 1 times that inner
optimizer's cost), 1 grad_outer.

Reference: D. Sow, K. Ji, Y. Liang. "On the convergence theory for Hessian-free bilevel
algorithms", NeurIPS 2022, arXiv 2110.07004 (its stochastic variant); authors' code
sowmaster/esjacobians (bilevel_training_mnist.py).
"""
from .esj import ESJ


class ESJS(ESJ):
    name = "esj-s"
    description = "Stochastic ESJ: mini-batch inner SGD, perturbed runs on the same batches"
    stochastic = True
    full_batch = False
