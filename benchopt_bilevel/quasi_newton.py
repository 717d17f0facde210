"""L-BFGS inverse-Hessian estimate as pure tensor functions over a fixed-size history.

The history is a dict of tensors that can sit in a solver's state:

    s, dg : (m, n) the last m pairs s_i = y_{i+1} − y_i, dg_i = ∇g(y_{i+1}) − ∇g(y_i) (flattened;
            the textbook's (s, y), renamed since y is the inner variable here)
    rho   : (m,)   1 / (s_iᵀ dg_i), 0 for an empty slot (an empty slot then has no effect)
    count : ()     int64 number of accepted pairs; the newest pair sits in slot (count − 1) mod m

It is a circular buffer: `lbfgs_update` writes slot count mod m with a mask, never a Python
branch, and skips a pair whose curvature sᵀdg is not positive (the update would lose positive
definiteness). `lbfgs_apply` applies the L-BFGS matrix of the two-loop recursion (Nocedal 1980)
with the initial matrix H₀ = γI, γ = sᵀdg / dgᵀdg of the newest pair (or `h0` while the history is
empty), evaluated in its compact matrix form (Byrd, Nocedal & Schnabel 1994). Fixed loop counts
and no Python branch on tensor values, so both can be compiled.

Reference: J. Nocedal. "Updating quasi-Newton matrices with limited storage", Math. Comp. 1980;
R. Byrd, J. Nocedal, R. Schnabel. "Representations of quasi-Newton matrices and their use in
limited memory methods", Math. Prog. 1994; J. Nocedal, S. Wright. "Numerical Optimization", 2nd
ed., Algorithm 7.4 and §7.2.
"""
from __future__ import annotations

from typing import Callable

import torch

from .linalg import repeat

Tensor = torch.Tensor
History = dict[str, Tensor]


ROUND_OFF_STEPS = 1e3  # a step below this many ulps of its iterate carries no curvature

def lbfgs_init(like: Tensor, memory: int) -> History:
    """An empty history of `memory` pairs for vectors shaped like `like`."""
    if memory < 1:
        raise ValueError(f"L-BFGS memory must be at least 1, got {memory}")
    n = like.numel()
    zeros = like.new_zeros((memory, n))
    return {"s": zeros, "dg": zeros.clone(), "rho": like.new_zeros((memory,)),
            "count": torch.zeros((), dtype=torch.int64, device=like.device)}


def lbfgs_update(history: History, s: Tensor, dg: Tensor, point: Tensor | None = None) -> History:
    """The history with the pair (s, dg) written in the next slot; unchanged when sᵀdg ≤ 0, or
    when s is within round-off of `point` (the iterate it moves from), if given."""
    s, dg = s.reshape(-1), dg.reshape(-1)
    memory = history["rho"].shape[0]
    curvature = torch.dot(s, dg)
    # Positive curvature, relative to the pair's size so that round-off pairs are skipped too.
    eps = torch.finfo(s.dtype).eps
    s_norm = torch.linalg.vector_norm(s)
    accept = curvature > eps * s_norm * torch.linalg.vector_norm(dg)
    if point is not None:
        # Once the iterates have converged, s and dg are differences of round-off: a pair with
        # curvature ~1e-31 would enter with ρ ~ 1e31 and make H noise in its direction.
        accept = accept & (s_norm > ROUND_OFF_STEPS * eps * (1.0 + torch.linalg.vector_norm(point)))
    slot = torch.remainder(history["count"], memory)
    write = (torch.arange(memory, device=s.device) == slot) & accept  # (m,) one-hot or empty
    rho = 1.0 / torch.where(accept, curvature, torch.ones_like(curvature))
    return {"s": torch.where(write[:, None], s[None, :], history["s"]),
            "dg": torch.where(write[:, None], dg[None, :], history["dg"]),
            "rho": torch.where(write, rho, history["rho"]),
            "count": history["count"] + accept.to(torch.int64)}


def lbfgs_apply(history: History, g: Tensor, h0: float = 1.0) -> Tensor:
    """H g, with H the L-BFGS inverse-Hessian estimate of the history.

    The same matrix as the two-loop recursion, in the compact form of Byrd, Nocedal & Schnabel
    (1994, Thm 2.2), which is a handful of (m, n) products and two m×m triangular solves instead
    of 4m sequential vector operations (the two-loop recursion's per-op overhead dominates on
    small problems):

        H g = γ g + S R⁻ᵀ ((D + γ YᵀY) t − γ Yᵀg) − γ Y t,   t = R⁻¹ Sᵀg,

    S, Y the pairs (s_i, dg_i) as columns oldest first, R the upper triangle of SᵀY, D its diagonal.
    An empty slot has s = dg = 0 and a unit diagonal in R, so it contributes nothing.
    """
    shape = g.shape
    g = g.reshape(-1)
    count, memory = history["count"], history["rho"].shape[0]
    order = torch.remainder(count + torch.arange(memory, device=g.device), memory)  # oldest first
    s, dg, rho = history["s"][order], history["dg"][order], history["rho"][order]  # rows = pairs
    filled = rho != 0
    sdg = s @ dg.T  # (m, m): entry (i, j) = s_iᵀ dg_j
    index = torch.arange(memory, device=g.device)
    upper, diagonal = index[:, None] <= index[None, :], index[:, None] == index[None, :]
    # Upper triangle of SᵀY (a comparison mask: faster than torch.triu on tiny CPU matrices),
    # with a unit diagonal on empty slots.
    R = torch.where(upper & (filled[:, None] | ~diagonal), sdg, diagonal.to(g.dtype))
    diag = torch.diagonal(sdg) * filled
    dgdg = torch.dot(dg[-1], dg[-1])  # newest pair last
    filled_any = count > 0
    gamma = torch.where(filled_any, torch.dot(s[-1], dg[-1]) / torch.where(filled_any, dgdg, torch.ones_like(dgdg)),
                        torch.zeros_like(dgdg) + h0)  # h0: a float, or a 0-dim tensor in a fast build
    t = torch.linalg.solve_triangular(R, (s @ g)[:, None], upper=True)
    u = (diag[:, None] * t + gamma * (dg @ (dg.T @ t))) - gamma * (dg @ g)[:, None]
    p = torch.linalg.solve_triangular(R.T, u, upper=False)
    return (gamma * g + s.T @ p[:, 0] - gamma * (dg.T @ t[:, 0])).reshape(shape)


def armijo_backtracking(value_fn: Callable[[Tensor], Tensor], y: Tensor, direction: Tensor, value: Tensor,
                        slope: Tensor, trials: int, c1: float = 1e-4) -> tuple[Tensor, Tensor]:
    """(t, g(y + t d)) for the first t in 1, ½, ..., 2^(1−trials) with g(y + t d) ≤ g(y) + c₁ t ∇gᵀd
    (Armijo), else the smallest. Every trial is evaluated (`trials` calls of `value_fn`) and the
    choice is a mask, so the cost is fixed and there is no branch on a tensor."""
    found = torch.zeros((), dtype=torch.bool, device=y.device)
    step, step_value = None, None
    for i in range(trials):
        t = 0.5 ** i
        trial_value = value_fn(y + t * direction)
        take = ~found & (trial_value <= value + c1 * t * slope)
        if step is None:
            step, step_value = torch.full_like(value, t), trial_value
        step = torch.where(take | (~found & (i == trials - 1)), torch.full_like(value, t), step)
        step_value = torch.where(take | (~found & (i == trials - 1)), trial_value, step_value)
        found = found | take
    return step, step_value


def lbfgs_minimize(grad_fn: Callable[[Tensor], Tensor], y: Tensor, history: History, n_steps: int,
                   h0: float = 1.0, value_fn: Callable[[Tensor], Tensor] | None = None,
                   line_search: int = 0) -> tuple[Tensor, History]:
    """`n_steps` of y ← y + t d, d = −H ∇(y), the pairs of consecutive iterates added to `history`.

    Costs `n_steps` calls of `grad_fn` and adds n_steps − 1 pairs (the last iterate's gradient
    is not computed). t = 1 by default (no line search: a fixed cost and no branch, as a compiled
    step needs; the scaling γ = sᵀdg / dgᵀdg of H₀ keeps the unit step sensible on strongly
    convex problems); with `line_search` > 0 and `value_fn`, t backtracks (`armijo_backtracking`)
    for n_steps · line_search + 1 calls of `value_fn` (the accepted trial's value is reused).
    """
    if line_search > 0 and value_fn is None:
        raise ValueError("a line search needs value_fn")
    if isinstance(n_steps, int) and n_steps < 1:  # a tensor count (a fast build's input) is >= 1
        return y, history
    names = list(history)

    def move(y: Tensor, grad: Tensor, history: History, value: Tensor | None) -> tuple[Tensor, Tensor | None]:
        direction = -lbfgs_apply(history, grad, h0)
        if line_search == 0:
            return y + direction, value
        step, value = armijo_backtracking(value_fn, y, direction, value,
                                          torch.dot(grad.reshape(-1), direction.reshape(-1)), line_search)
        return y + step * direction, value

    def later_step(carry: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        # Steps 2..n: the pair of the previous and current iterates enters the history first.
        y_prev, y, grad_prev, *rest = carry
        history = dict(zip(names, rest[:len(names)]))
        value = rest[len(names)] if line_search > 0 else None
        grad = grad_fn(y)
        history = lbfgs_update(history, y - y_prev, grad - grad_prev, point=y_prev)
        y_next, value = move(y, grad, history, value)
        return (y, y_next, grad, *history.values(), *([value] if line_search > 0 else []))

    # The first step has no pair to add; the others are one loop body (linalg.repeat: a
    # while_loop in a fast build, whatever n_steps).
    value = value_fn(y) if line_search > 0 else None
    grad = grad_fn(y)
    y_next, value = move(y, grad, history, value)
    carry = (y, y_next, grad, *(history[k] for k in names), *([value] if line_search > 0 else []))
    _, y, _, *rest = repeat(n_steps - 1, later_step, carry)
    return y, dict(zip(names, rest[:len(names)]))
