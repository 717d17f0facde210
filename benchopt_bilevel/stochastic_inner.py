"""Single-level stochastic optimizers usable as inner solvers: AI-SARAH and stochastic RKC.

Both are pure tensor functions with the signature of `inner.sgd`,

    y, key = optimizer(oracles, x, y, key, n_steps, step, **options)

(fixed loop counts, batches drawn from `key`, data-dependent decisions made with masks), so a
method can take them as its `inner` choice and its step can still be compiled. They
minimize g(x, ·) for a fixed x; `oracle_cost(name, n_steps, **options)` gives the calls one
call makes, for the solvers' `oracle_cost(facts)`. With `full_batch=True` they use the full
batch (batch None) in place of mini-batches: what the deterministic methods (AID, ITD) take.

Solvers call them through `minimize(name, ..., step)`, where `step` is the method's inner step
as gradient descent understands it (stable for step·L < 2): SGD takes it as is, AI-SARAH ignores
it (it reads its step off the local curvature, so it needs none, as its paper promises), and
SRKC takes the same fraction of its own stability interval, h = step · ℓ_s / 2, so that a step
tuned for SGD stays stable and one SRKC step of s gradients goes about ℓ_s / 2 ≈ s² / 1.3 times
as far as one SGD step (at s gradients, SRKC with h = step would only cost s times more).
That pays on ill-conditioned inner problems only: the damped Chebyshev polynomial contracts the
rest of the spectrum by just ≈ 1 / T_s(ω_0) ≈ 0.65 per step (s = 5, η = 0.5), against (1 − αλ)^s
for s gradient steps. ITD's hypergradient after 40 gradients (tests/test_fidelity_unrolled.py):
κ = 80, SRKC 6e-2 against 7e-1 for gradient descent; κ = 1.6, SRKC 8e-3 against 2e-13. On
mini-batches the longer steps also widen the noise ball (conformance quadratic, 300 gradients at
step 0.1: relative inner error 6e-3 against 1e-3 for SGD; logreg in blocks of 32: 1e-1 against
2e-2).
`validate(name, owner)` rejects an unknown name with the choices.

AI-SARAH (Shi, Sadiev, Loizou, Richtárik, Takáč, "AI-SARAH: adaptive and implicit stochastic
recursive gradient methods", TMLR 2023, arXiv 2102.09700), practical variant: per epoch,

    u_0 = ∇_y g(x, y_0) (full batch);  while ‖u_t‖² ≥ r ‖u_0‖² (at most n_steps iterations):
        draw B;  α̃ = ⟨u, H_B u⟩ / ‖H_B u‖²           (one Newton step on ξ(α) = ‖u_t(α)‖²)
        1/α_max ← β / α_max + (1 − β) / α̃              (harmonic smoothing; 1/α̃ at the start)
        y⁺ = y − min(α̃, α_max, step) u;   u ← ∇_y g(x, y⁺; B) − ∇_y g(x, y; B) + u
  with u_t(α) = ∇_y g(x, y − α u; B) − ∇_y g(x, y; B) + u, H_B = ∇²_yy g(x, y; B), and ξ''(0)
  in its Gauss–Newton form 2‖H_B u‖² (exact on quadratics). The stopping test is a mask: the
  iterations after it are computed and discarded. Cost per epoch: 1 grad_inner_full,
  2 n_steps grad_inner, n_steps hvp. On the full batch the recursion telescopes to the gradient
  itself, u_t = ∇_y g(x, y_t), which is then computed once per iteration (1 + n_steps
  grad_inner_full, n_steps hvp_full per epoch): gradient descent with AI-SARAH's step.

Stochastic Runge–Kutta–Chebyshev (SRKC): the s-stage damped Chebyshev method of Eftekhari,
Vandereycken, Vilmart & Zygalakis ("Explicit stabilised gradient descent for faster strongly
convex optimisation", BIT Numer. Math. 2021, arXiv 1805.07199) applied to the gradient flow of
g(x, ·), each stage on a fresh mini-batch:

    K_0 = y,  K_1 = y − h μ_1 ∇_y g(x, K_0; B_1),
    K_j = ν_j K_{j−1} + κ_j K_{j−2} − h μ_j ∇_y g(x, K_{j−1}; B_j),   y⁺ = K_s,
    ω_0 = 1 + η/s², ω_1 = T_s(ω_0)/T_s'(ω_0), μ_1 = ω_1/ω_0, μ_j = 2ω_1 T_{j−1}/T_j,
    ν_j = 2ω_0 T_{j−1}/T_j, κ_j = −T_{j−2}/T_j   (T_j = T_j(ω_0), Chebyshev polynomials).
  Stable for h L ≤ (1 + ω_0)/ω_1 ≈ (2 − 4η/3) s², against 2 for gradient descent, so one step
  of s gradients contracts the slow directions about s times more than s gradient steps. The
  damping η defaults to 0.5 rather than ODE solvers' 0.05: it shortens the stability interval a
  little but contracts the middle of the spectrum much more, which is what optimization needs
  (on a quadratic with condition number 80, 200 gradients reach a relative error of 5e-17 with
  s = 5, η = 0.5, h = 0.9 ℓ_s/L, against 1e-3 with η = 0.05 and 1e-5 for gradient descent).
  Cost per step: s grad_inner. `chebyshev_path` records the full-batch stages and their
  coefficients, for reverse-mode unrolling (ITD, T-RHG).
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from . import inner, rng
from .errors import UserError
from .linalg import repeat
from .oracles import Oracles

Tensor = torch.Tensor


def _draw(oracles: Oracles, key: Tensor, full_batch: bool) -> tuple[Tensor | None, Tensor]:
    """The next inner batch and key: None (the full batch) and the key untouched when `full_batch`."""
    if full_batch:
        return None, key
    key, k_batch = rng.split(key)
    return oracles.sample_inner(k_batch), key


# -- AI-SARAH ---------------------------------------------------------------------------------
def ai_sarah(oracles: Oracles, x: Tensor, y: Tensor, key: Tensor, n_steps: int, step: float = math.inf,
             *, n_epochs: int = 1, stop_ratio: float = 1 / 32, smoothing: float = 0.999,
             full_batch: bool = False) -> tuple[Tensor, Tensor]:
    """`n_epochs` AI-SARAH epochs of at most `n_steps` iterations; `step` caps the adaptive step."""
    tiny = torch.finfo(y.dtype).tiny

    def iteration(carry: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        y, u, key, inverse_max, started, active, threshold = carry
        batch, key = _draw(oracles, key, full_batch)
        hvp = oracles.hvp_inner(x, y, u, batch)
        curvature = torch.sum(u * hvp)
        alpha_newton = torch.clamp(curvature / torch.clamp(torch.sum(hvp * hvp), min=tiny), min=tiny)
        inverse = 1 / alpha_newton
        # The first iteration of the call sets 1 / α_max; later ones smooth it (while active).
        smoothed = torch.where(started, smoothing * inverse_max + (1 - smoothing) * inverse, inverse)
        inverse_max = torch.where(active, smoothed, inverse_max)
        alpha = torch.clamp(torch.minimum(alpha_newton, 1 / inverse_max), max=step)
        y_new = y - alpha * u
        if full_batch:  # the recursion would give ∇_y g(x, y_new) itself, at twice the cost
            u_new = oracles.grad_inner_y(x, y_new, None)
        else:
            u_new = oracles.grad_inner_y(x, y_new, batch) - oracles.grad_inner_y(x, y, batch) + u
        y, u = torch.where(active, y_new, y), torch.where(active, u_new, u)
        active = active & (torch.sum(u * u) >= threshold)
        return y, u, key, inverse_max, torch.ones_like(started), active, threshold

    inverse_max = y.new_ones(())  # 1 / α_max, smoothed over every iteration of the call
    started = torch.zeros((), dtype=torch.bool, device=y.device)
    for _ in range(n_epochs):
        u = oracles.grad_inner_y(x, y, None)
        threshold = stop_ratio * torch.sum(u * u)
        active = torch.ones((), dtype=torch.bool, device=y.device)
        y, _, key, inverse_max, started, _, _ = repeat(
            n_steps, iteration, (y, u, key, inverse_max, started, active, threshold))
    return y, key


# -- stochastic Runge–Kutta–Chebyshev -----------------------------------------------------------
def chebyshev_coefficients(n_stages: int, damping: float = 0.5) -> dict[str, list[float] | float]:
    """(μ_j, ν_j, κ_j) of the damped s-stage Chebyshev method and its stability bound ℓ_s."""
    omega0 = 1 + damping / n_stages**2
    t = [1.0, omega0]  # T_j(ω_0)
    u = [1.0, 2 * omega0]  # U_j(ω_0), for T_s' = s U_{s−1}
    for _ in range(2, n_stages + 1):
        t.append(2 * omega0 * t[-1] - t[-2])
        u.append(2 * omega0 * u[-1] - u[-2])
    omega1 = t[n_stages] / (n_stages * u[n_stages - 1])
    mu = [omega1 / omega0] + [2 * omega1 * t[j - 1] / t[j] for j in range(2, n_stages + 1)]
    nu = [0.0] + [2 * omega0 * t[j - 1] / t[j] for j in range(2, n_stages + 1)]
    kappa = [0.0] + [-t[j - 2] / t[j] for j in range(2, n_stages + 1)]
    return {"mu": mu, "nu": nu, "kappa": kappa, "stability_bound": (1 + omega0) / omega1}


def srkc(oracles: Oracles, x: Tensor, y: Tensor, key: Tensor, n_steps: int, step: float,
         *, n_stages: int = 5, damping: float = 0.5, full_batch: bool = False) -> tuple[Tensor, Tensor]:
    """`n_steps` SRKC steps of size h = `step`, s = `n_stages` mini-batch gradients each."""
    c = chebyshev_coefficients(n_stages, damping)

    def one_step(carry: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        y, key = carry
        previous, current = y, y
        for j in range(n_stages):  # unrolled: s stages, each with its own coefficients
            batch, key = _draw(oracles, key, full_batch)
            gradient = oracles.grad_inner_y(x, current, batch)
            if j == 0:
                following = current - step * c["mu"][0] * gradient
            else:
                following = c["nu"][j] * current + c["kappa"][j] * previous - step * c["mu"][j] * gradient
            previous, current = current, following
        return oracles.project_y(current), key

    y, key = repeat(n_steps, one_step, (y, key))
    return y, key


Stage = tuple[float, float, float]  # (a, b, c) of z⁺ = a z + b z⁻ − c ∇_y g(x, z)


def chebyshev_stages(step: float | Tensor, n_stages: int = 5, damping: float = 0.5) -> list[Stage]:
    """The (a, b, c) of the s stages of one `srkc` step of size h = `step`; the first is
    (1, 0, h μ_1): it only sees the step's start."""
    c = chebyshev_coefficients(n_stages, damping)
    return [(1.0, 0.0, step * c["mu"][0])] + [(c["nu"][j], c["kappa"][j], step * c["mu"][j])
                                              for j in range(1, n_stages)]


def chebyshev_path(oracles: Oracles, x: Tensor, y: Tensor, n_steps: int, step: float,
                   *, n_stages: int = 5, damping: float = 0.5) -> tuple[list[Tensor], list[Stage]]:
    """The points z_0 = y, ..., z_N (N = n_steps · n_stages) of full-batch `srkc` and the stage
    coefficients with z_{k+1} = a_k z_k + b_k z_{k−1} − c_k ∇_y g(x, z_k): what reverse-mode
    unrolling needs. The first stage of a step has b = 0 (it only sees the step's start)."""
    stages = chebyshev_stages(step, n_stages, damping)
    points, coefficients = [y], []
    for _ in range(n_steps):
        for j, (a, b, h) in enumerate(stages):
            before = points[-2] if j > 0 else points[-1]
            following = a * points[-1] + b * before - h * oracles.grad_inner_y(x, points[-1], None)
            points.append(oracles.project_y(following) if j == n_stages - 1 else following)
        coefficients += stages
    return points, coefficients


# -- the interchangeable inner optimizers --------------------------------------------------------
INNER_OPTIMIZERS: dict[str, Callable[..., tuple[Tensor, Tensor]]] = {
    "sgd": inner.sgd,
    "ai_sarah": ai_sarah,
    "srkc": srkc,
}


def validate(name: str, owner: str, choices: tuple[str, ...] = tuple(INNER_OPTIMIZERS)) -> None:
    """Raise a UserError naming the choices unless `name` is one of them."""
    if name not in choices:
        raise UserError(f"{owner}: unknown inner optimizer {name!r}; choose one of {', '.join(choices)}")


def srkc_step(step: float, n_stages: int = 5, damping: float = 0.5) -> float:
    """SRKC's h for a gradient-descent step: the same fraction of its stability interval ℓ_s."""
    return step * chebyshev_coefficients(n_stages, damping)["stability_bound"] / 2


def minimize(name: str, oracles: Oracles, x: Tensor, y: Tensor, key: Tensor, n_steps: int, step: float,
             *, full_batch: bool = False) -> tuple[Tensor, Tensor]:
    """`n_steps` steps of the inner optimizer `name` on g(x, ·) from y; `step` is a gradient
    descent step (see the module docstring). Returns the new y and key."""
    if name == "sgd":
        if full_batch:
            return inner.gradient_descent(oracles, x, y, n_steps, step), key
        return inner.sgd(oracles, x, y, key, n_steps, step)
    if name == "ai_sarah":
        return ai_sarah(oracles, x, y, key, n_steps, full_batch=full_batch)
    if name == "srkc":
        return srkc(oracles, x, y, key, n_steps, srkc_step(step), full_batch=full_batch)
    raise ValueError(f"unknown inner optimizer {name!r}; choose one of {sorted(INNER_OPTIMIZERS)}")


def oracle_cost(name: str, n_steps: int, *, full_batch: bool = False, **options) -> dict[str, float]:
    """Oracle calls of one call of the inner optimizer `name` (keys of `Oracles.calls`); on the
    full batch with `full_batch` (as `minimize` runs it)."""
    suffix = "_full" if full_batch else ""
    if name == "sgd":
        return {"grad_inner" + suffix: n_steps}
    if name == "ai_sarah":
        epochs = options.get("n_epochs", 1)
        if full_batch:
            return {"grad_inner_full": (1 + n_steps) * epochs, "hvp_full": n_steps * epochs}
        return {"grad_inner_full": epochs, "grad_inner": 2 * n_steps * epochs, "hvp": n_steps * epochs}
    if name == "srkc":
        return {"grad_inner" + suffix: n_steps * options.get("n_stages", 5)}
    raise ValueError(f"unknown inner optimizer {name!r}; choose one of {sorted(INNER_OPTIMIZERS)}")
