"""Outer optimizers as pure transforms of a descent direction, for solvers that compose one.

As in optax, a transform is a pair of pure functions over a flat dict of tensors that the solver
merges into its own state:

    opt_state = optimizer.init(x)                          # {} for SGD, {"m", "s", "t"} for Adam
    update, opt_state = optimizer.update(direction, state)  # reads its keys from the solver state
    x ← x − update

- SGD: update = lr · d.
- Adam (Kingma & Ba 2015): m ← β1 m + (1 − β1) d,  s ← β2 s + (1 − β2) d²,  t ← t + 1,
  update = lr · (m / (1 − β1^t)) / (√(s / (1 − β2^t)) + ε).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

Tensor = torch.Tensor
OptState = dict[str, Tensor]


@dataclass(frozen=True)
class OuterOptimizer:
    """`init(x) -> opt_state` and `update(direction, state) -> (update to subtract from x, opt_state)`."""

    init: Callable[[Tensor], OptState]
    update: Callable[[Tensor, OptState], tuple[Tensor, OptState]]


def sgd(lr: float) -> OuterOptimizer:
    """Plain steps along −direction: no state."""
    return OuterOptimizer(init=lambda x: {}, update=lambda direction, state: (lr * direction, {}))


def adam(lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> OuterOptimizer:
    """Adam with bias-corrected moments m, s and a float step counter t in the state."""
    def init(x: Tensor) -> OptState:
        return {"m": torch.zeros_like(x), "s": torch.zeros_like(x),
                "t": torch.zeros((), dtype=x.dtype, device=x.device)}

    def update(direction: Tensor, state: OptState) -> tuple[Tensor, OptState]:
        t = state["t"] + 1
        m = beta1 * state["m"] + (1 - beta1) * direction
        s = beta2 * state["s"] + (1 - beta2) * direction**2
        m_hat = m / (1 - beta1**t)
        s_hat = s / (1 - beta2**t)
        return lr * m_hat / (torch.sqrt(s_hat) + eps), {"m": m, "s": s, "t": t}

    return OuterOptimizer(init=init, update=update)


OPTIMIZERS: dict[str, Callable[[float], OuterOptimizer]] = {"sgd": sgd, "adam": adam}


def check_outer_optimizer(name: str) -> None:
    """ValueError unless `name` is a known outer optimizer (for a solver's Params validation)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown outer optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")


def outer_optimizer(name: str, lr: float) -> OuterOptimizer:
    """The outer optimizer `name` (sgd or adam) with learning rate `lr` and its default settings."""
    check_outer_optimizer(name)
    return OPTIMIZERS[name](lr)
