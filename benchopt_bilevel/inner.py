"""Inner optimizers shared by the two-loop methods: pure functions of (oracles, x, y, key).

Each returns the new y (and the new key for stochastic ones); each step is one `grad_inner`
oracle call, projected on the feasible set when the lower level is constrained. The fixed-count
loops are `linalg.repeat`: a while_loop in a compiled or exported step (one body in the graph
whatever T), a Python loop eager.
"""
from __future__ import annotations

import torch

from . import rng
from .linalg import repeat
from .oracles import Oracles

Tensor = torch.Tensor


def gradient_descent(oracles: Oracles, x: Tensor, y: Tensor, n_steps: int, step: float,
                     batch: Tensor | None = None) -> Tensor:
    """n_steps of y ← Π(y − step ∇_y g(x, y; batch)); full batch when batch is None."""
    def one_step(carry: tuple[Tensor]) -> tuple[Tensor]:
        (y,) = carry
        return (oracles.project_y(y - step * oracles.grad_inner_y(x, y, batch)),)

    return repeat(n_steps, one_step, (y,))[0]


def gradient_descent_rows(oracles: Oracles, xs: Tensor, y: Tensor, n_steps: int, step: float | Tensor) -> Tensor:
    """`gradient_descent` (full batch) from the same y at every outer point of `xs` (rows, *x
    shape), as one batched run (`Oracles.map_rows`): the rows' gradients read the data once per
    step instead of once per row. Returns the rows' y_T, (rows, *y shape); counts a gradient per
    row and step."""
    # One 0-dim tensor of y's dtype, float or traced hyperparameter alike: the recorded graph
    # (linalg.map_rows) is traced on the eager call's arguments and replayed on the export's.
    step = (step.to(y.dtype) if isinstance(step, Tensor)
            else torch.full((), step, dtype=y.dtype, device=y.device))

    def one_row(x_: Tensor, y_: Tensor, step_: Tensor) -> Tensor:
        return oracles.project_y(y_ - step_ * oracles.grad_inner_y(x_, y_, None))

    def one_step(carry: tuple[Tensor]) -> tuple[Tensor]:
        return (oracles.map_rows("gradient_descent_rows", one_row, (0, 0, None), xs, carry[0], step),)

    ys = y.unsqueeze(0).expand(xs.shape[0], *y.shape).clone()
    return repeat(n_steps, one_step, (ys,))[0]


def gradient_descent_path(oracles: Oracles, x: Tensor, y: Tensor, n_steps: int, step: float,
                          batch: Tensor | None = None) -> list[Tensor]:
    """The iterates y_0, ..., y_T of `gradient_descent` (what reverse-mode unrolling needs)."""
    path = [y]
    for _ in range(n_steps):
        path.append(oracles.project_y(path[-1] - step * oracles.grad_inner_y(x, path[-1], batch)))
    return path


def sgd(oracles: Oracles, x: Tensor, y: Tensor, key: Tensor, n_steps: int, step: float) -> tuple[Tensor, Tensor]:
    """n_steps of y ← Π(y − step ∇_y g(x, y; B)), a fresh inner mini-batch B per step."""
    def one_step(carry: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        y, key = carry
        key, sample_key = rng.split(key)
        batch = oracles.sample_inner(sample_key)
        return oracles.project_y(y - step * oracles.grad_inner_y(x, y, batch)), key

    y, key = repeat(n_steps, one_step, (y, key))
    return y, key
