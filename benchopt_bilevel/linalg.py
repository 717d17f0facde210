"""Linear algebra for A v = b with A symmetric (positive definite), given only `matvec`.

The one home of the iterative solvers the methods share. The deterministic ones have one
signature, as in jaxopt's linear_solve:

    solve(matvec, b, *, v0=None, maxiter=..., tol=0.0, **options) -> v

- `conjugate_gradient` (Hestenes & Stiefel 1952), optionally frozen at the first direction of
  non-positive curvature (Steihaug) or exited early on the host for exact answers;
- `neumann`: the truncated Neumann series; `fixed_point`: gradient descent on ½vᵀAv − bᵀv;
- `lanczos` and `subspace` (with their pieces, see below).

`v0` is the warm start (zero when None). They run exactly `maxiter` iterations with no Python
branch on tensor values, so they can sit inside a compiled chunk; `tol` freezes the iterate
once the residual norm is below tol * ||b|| (a masked update, not an early exit), so the
number of matvec calls, hence the oracle count, is always `maxiter`.

Stochastic Neumann estimates draw a fresh A_B (a mini-batch B) per term. Their matvec takes a
list of vectors and a key, `matvec(ws, key) -> [A_B w for w in ws]` with B drawn from `key`, so
that several points share the same batches (what recursive and momentum corrections need) and
this module never sees the oracles:

- `stochastic_neumann` (stocBiO, MRBO, VRBO; Ji, Yang & Liang 2021):
      v = η Σ_{k=0}^{Q} Π_{j≤k} (I − η A_{B_j}) b                      (Q matvecs per point)
- `random_neumann_product` (BSA, TTSA, SUSTAIN, BiAdam; Ghadimi & Wang 2018, Algorithm 3):
      p ~ U{0, …, Q−1},   v = Q η Π_{j=1}^{p} (I − η A_{B_j}) b
  an unbiased estimate of the Q-term sum; only the p drawn products are computed, through
  `repeat` (torch's while_loop when compiled), so (Q−1)/2 matvecs per point on average.

Krylov pieces: `lanczos` runs `maxiter` steps of the Lanczos three-term recurrence on
r0 = b − A v0, then takes the Galerkin solution v = v0 + Qᵀ T⁻¹ Q r0 with T the small
tridiagonal projection of A (Lanczos 1950; in exact arithmetic its iterate equals CG's after as
many matvecs). The recurrence is also exposed one step at a time (`lanczos_start`,
`lanczos_extend`, `lanczos_coefficients`) over a fixed-size basis held as a dict of tensors, so
that LancBiO can grow its basis by one vector per outer step. `subspace` takes
v_{k+1} = argmin of ½wᵀAw − bᵀw over span{b, v_k − η(A v_k − b)} (the SubBiO subspace of
Yang, Gao, Yuan 2025; each iteration does at least as well as gradient descent with step η),
from `orthonormal_rows` and `galerkin_coefficients`. A breakdown (invariant subspace found) or
a converged residual marks later slots inactive instead of exiting; an inactive slot is solved
as an identity row with a zero right-hand side, so it contributes nothing.

References: C. Lanczos. "An iteration method for the solution of the eigenvalue problem of linear
differential and integral operators", J. Res. NBS 1950; Y. Saad. "Iterative Methods for Sparse
Linear Systems", 2nd ed., §6.7 (D-Lanczos and its residual); T. Steihaug. "The conjugate
gradient method and trust regions in large scale optimization", SIAM J. Numer. Anal. 1983;
B. Gao, Y. Yang, Y. Yuan. "LancBiO: dynamic Lanczos-aided bilevel optimization via Krylov
subspace", ICLR 2025, arXiv 2404.03331.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch

from . import rng

Tensor = torch.Tensor
Matvec = Callable[[Tensor], Tensor]
SampledMatvec = Callable[[list[Tensor], Tensor], list[Tensor]]  # (ws, key) -> [A_B w], B from key
Basis = dict[str, Tensor]


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return torch.dot(a.reshape(-1), b.reshape(-1))


# -- loops ----------------------------------------------------------------------------------------
Carry = tuple[Tensor, ...]


def unaliased(outputs: Carry, inputs: Carry) -> Carry:
    """`outputs` with a copy of each one that is an input or an earlier output: a loop body
    (`while_loop`) may return neither an input as is nor one tensor as two outputs."""
    seen: list[Tensor] = []
    fresh = []
    for o in outputs:
        if any(o is t for t in (*inputs, *seen)):
            o = o.clone()
        seen.append(o)
        fresh.append(o)
    return tuple(fresh)


def repeat(count: Tensor | int, body: Callable[[Carry], Carry], carry: Carry) -> Carry:
    """`body` applied `count` times to `carry` (count: an int or a 0-dim integer tensor).

    Compiled or exported it is torch's `while_loop`: the graph holds one body whatever the count
    (an unrolled loop of T bodies costs T times the export and build time, and the count could
    not be data). Eager it is a Python loop, so the eager numbers and the oracle counts are those
    of a plain loop; a tensor count costs one read of a scalar (a device sync on a GPU): eager
    `while_loop` would compile its body, and the oracles do not count calls made while compiling.
    `body` must return tensors of the carry's shapes and dtypes; an input returned as is, or one
    tensor returned twice, is copied (while_loop rejects outputs that alias).
    """
    carry = tuple(carry)
    if isinstance(count, int) and count <= 1 or not torch.compiler.is_compiling():
        for _ in range(count if isinstance(count, int) else int(count)):
            carry = tuple(body(carry))
        return carry
    if isinstance(count, int):
        # On the host, as the runner's own count. torch.full, an op of the graph: a torch.tensor
        # constant in the body of a nested loop breaks AOTInductor's build (torch 2.13).
        # On a GPU the carry's device: Inductor's CUDA lowering of a loop whose counter is on the
        # host and its carry on the device fails (torch 2.11).
        device = next((c.device for c in carry if c.device.type == "cuda"), torch.device("cpu"))
        count = torch.full((), count, dtype=torch.int64, device=device)
    from torch._higher_order_ops.while_loop import while_loop  # noqa: PLC0415 - prototype API

    def step(i: Tensor, *inputs: Tensor) -> Carry:
        return (i + 1, *unaliased(tuple(body(inputs)), inputs))

    # One tensor twice in the carry (terms and sums both starting at b) would alias two inputs.
    carry = tuple(c.clone() if any(c is d for d in carry[:j]) else c for j, c in enumerate(carry))
    _, *looped = while_loop(lambda i, *_: i < count, step, (torch.zeros_like(count), *carry))
    # A loop that ran zero times returns its input: said explicitly, because AOTInductor's build
    # of a zero-trip loop nested in the step loop returned wrong values (SUSTAIN's and BiAdam's
    # random Neumann length; torch 2.13), although the exported graph gives the eager values.
    return tuple(torch.where(count > 0, out, c) for out, c in zip(looped, carry))


class Selected:
    """A choice made when the step runs, not when it is built: the index (a 0-dim int64 tensor)
    of the chosen one of `options`. What a string parameter listed in a solver's
    `input_choices` holds inside a fast build (fast.py), so that one build serves every value a
    tuning search draws. Read it only through `switch`: comparing it with a string raises, so
    that no step can silently branch on it in Python."""

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, index: Tensor, options: tuple[str, ...]) -> None:
        self.index, self.options = index, tuple(options)

    def __eq__(self, other: object) -> bool:
        raise TypeError(f"a choice among {self.options} made at run time cannot be compared in "
                        "Python: branch on it with linalg.switch")

    def __repr__(self) -> str:
        return f"Selected(one of {self.options})"


def switch(choice: str | Selected, branches: dict[str, Callable[..., Carry]], *operands: Tensor) -> Carry:
    """`branches[choice](*operands)`: every branch takes the operands and returns tensors of the
    same shapes and dtypes.

    Eager, or with a string (a choice fixed at build time), only the chosen branch runs. With a
    `Selected` choice it is torch's `cond` over the index, nested once per option, so the graph
    holds every branch and runs one; outputs that are inputs as is are copied (cond rejects
    aliases)."""
    if isinstance(choice, str):
        return tuple(branches[choice](*operands))
    missing = [o for o in choice.options if o not in branches]
    if missing:
        raise ValueError(f"switch has no branch for {missing}")

    def fresh(name: str) -> Callable[..., Carry]:
        return lambda *inputs: unaliased(tuple(branches[name](*inputs)), inputs)

    def pick(j: int) -> Callable[..., Carry]:
        if j == len(choice.options) - 1:
            return fresh(choice.options[j])
        return lambda *inputs: tuple(torch.cond(choice.index == j, fresh(choice.options[j]), pick(j + 1), inputs))

    return pick(0)(*operands)


class RowGraphs:
    """The vmapped graphs of a step's `map_rows` calls, recorded while the step runs eagerly,
    for its export to use (see `map_rows`); `row_graphs()` makes one current."""

    def __init__(self) -> None:
        self.graphs: dict[tuple, Callable[..., Tensor]] = {}
        self.recording = False

    def record(self, run: Callable[[], object]) -> None:
        """Run `run` (an eager step) and keep the graph of every `map_rows` call it makes."""
        self.recording = True
        try:
            run()
        finally:
            self.recording = False


_row_graphs: RowGraphs | None = None
# What the error of an export that met an unrecorded `map_rows` says. Matched in the message:
# raised while a `while_loop` body is traced, it reaches the caller only as text inside
# torch's own error (and a flag set there would be a traced side effect, never applied).
MISSING_ROW_GRAPH = "no recorded graph for this export"


@contextlib.contextmanager
def row_graphs() -> Iterator[RowGraphs]:
    """The current `RowGraphs` for the length of an export (fast.export_steps)."""
    global _row_graphs
    previous, _row_graphs = _row_graphs, RowGraphs()
    try:
        yield _row_graphs
    finally:
        _row_graphs = previous


def map_rows(name: str, fn: Callable[..., Tensor], in_dims: tuple[int | None, ...], *args: Tensor) -> Tensor:
    """`fn` applied to every row of the arguments with `in_dims` 0 (the others shared), stacked:
    `torch.func.vmap(fn, in_dims)(*args)`, so that R runs of one computation cost one batched
    kernel (R matrix-vector products become one matrix product, reading the data once).

    `fn` may close over constants (a problem's data, the oracles) but not over tensors of a
    traced step: pass those as arguments (in_dim None). `name` and the argument shapes identify
    the call within a step. Exported (a fast build), vmap would stay in the graph as batch
    dimension ops that a `while_loop` body cannot hold (torch 2.13: the body fails to trace, or
    the exported program fails to run, "tensor escaped from vmap"). So the exporter first runs
    the step eagerly with a `RowGraphs` recording (`row_graphs`), which traces each call's
    vmapped function into plain aten ops (make_fx, on zeros of the arguments' shapes), and the
    export calls those graphs. The traced graph is the function's, so `fn` must not branch in
    Python on tensor values (export rejects that anyway)."""
    batched = torch.func.vmap(fn, in_dims=in_dims)
    key = (name, tuple(tuple(a.shape) for a in args))
    recorded = _row_graphs
    if not torch.compiler.is_exporting():
        if recorded is not None and recorded.recording and key not in recorded.graphs:
            from torch.fx.experimental.proxy_tensor import make_fx  # noqa: PLC0415

            recorded.graphs[key] = make_fx(batched)(*(torch.zeros_like(a) for a in args))
        return batched(*args)
    if recorded is None or key not in recorded.graphs:
        raise RuntimeError(f"map_rows {name!r}: {MISSING_ROW_GRAPH} (fast.export_steps records them "
                           "by running the step once eagerly)")
    return recorded.graphs[key](*args)


def is_mapped(t: Tensor) -> bool:
    """Whether `t` is one row of a `map_rows` batch (a vmapped tensor), so that a problem can pick
    the product that is fastest batched (a layout choice; the values are the same). False under
    torch.compile's tracing, which sees no batched tensor."""
    if torch.compiler.is_dynamo_compiling():
        return False
    return bool(torch._C._functorch.is_batchedtensor(t))


# -- conjugate gradient -------------------------------------------------------------------------
def conjugate_gradient(
    matvec: Matvec, b: Tensor, *, v0: Tensor | None = None, maxiter: int = 10, tol: float = 0.0,
    atol: float = 0.0, stop_at_negative_curvature: bool = False, early_exit: bool = False,
) -> Tensor:
    """Conjugate gradient: `maxiter` matvecs (+1 when warm-started).

    The iterate freezes once ‖r‖ ≤ max(tol·‖b‖, atol). With `stop_at_negative_curvature` it also
    freezes for good at the first direction with pᵀAp ≤ 0 (Steihaug's truncated CG, for the
    indefinite Hessians of deep networks). `early_exit` stops the loop on the host once
    converged: fewer matvecs, but a branch on a tensor value, so only for exact answers
    computed outside the timed, compiled steps.
    """
    v = torch.zeros_like(b) if v0 is None else v0
    r = b - matvec(v) if v0 is not None else b.clone()
    threshold = torch.clamp(tol * torch.linalg.vector_norm(b), min=atol) ** 2
    tiny = torch.finfo(b.dtype).tiny

    def iteration(carry: Carry) -> Carry:
        v, r, p, rs, alive = carry
        ap = matvec(p)
        curvature = _dot(p, ap)
        if stop_at_negative_curvature:
            alive = alive & (curvature > 0)
        active = ((rs > threshold) & alive).to(b.dtype)  # frozen once converged (or curvature lost)
        alpha = active * rs / torch.where(curvature > 0, curvature, torch.ones_like(curvature))
        r_new = r - alpha * ap
        rs_new = _dot(r_new, r_new)
        beta = rs_new / torch.clamp(rs, min=tiny)
        return v + alpha * p, r_new, r_new + active * beta * p, rs_new, alive

    # alive: no negative curvature met yet
    carry = (v, r, r, _dot(r, r), torch.ones((), dtype=torch.bool, device=b.device))
    if not early_exit:
        return repeat(maxiter, iteration, carry)[0]
    for _ in range(maxiter):  # on the host: a branch on the residual
        if not bool(carry[3] > threshold):
            break
        carry = iteration(carry)
    return carry[0]
    return v


# -- Neumann series and fixed-point iterations --------------------------------------------------
def neumann(
    matvec: Matvec, b: Tensor, *, v0: Tensor | None = None, maxiter: int = 10, tol: float = 0.0,
    step: float = 1.0,
) -> Tensor:
    """Truncated Neumann series v = step * Σ_{k=0}^{maxiter} (I − step·A)^k b: `maxiter` matvecs.

    Converges when step < 2 / λ_max(A). A warm start is not meaningful for a series; `v0` is
    accepted for the common signature and ignored.
    """
    def term(carry: Carry) -> Carry:
        previous, v = carry
        following = previous - step * matvec(previous)
        return following, v + following

    return repeat(maxiter, term, (step * b, step * b))[1]


def stochastic_neumann(matvec: SampledMatvec, b: list[Tensor], *, key: Tensor, maxiter: int,
                       step: float) -> tuple[list[Tensor], Tensor]:
    """η Σ_{k=0}^{maxiter} Π_{j≤k} (I − η A_{B_j}) b for every b, a fresh batch B_j per term
    shared by all of them; returns the estimates and the new key."""
    count = len(b)

    def term(carry: Carry) -> Carry:
        key, terms, sums = carry[0], carry[1:1 + count], carry[1 + count:]
        key, k_matvec = rng.split(key)
        terms = [w - step * a for w, a in zip(terms, matvec(list(terms), k_matvec))]
        return (key, *terms, *[s + w for s, w in zip(sums, terms)])

    key, *rest = repeat(maxiter, term, (key, *b, *b))
    return [step * s for s in rest[count:]], key


def random_neumann_product(matvec: SampledMatvec, b: list[Tensor], *, key: Tensor, n_terms: int,
                           step: float) -> tuple[list[Tensor], Tensor]:
    """Q η Π_{j≤p} (I − η A_{B_j}) b for every b (Q = n_terms), one random length p ~ U{0..Q−1}
    and the same batches for all of them; returns the estimates and the new key.

    Only the p drawn products are computed (`repeat`): (Q−1)/2 matvecs per b on average."""
    key, k_length = rng.split(key)
    length = rng.randint(k_length, n_terms)

    def one_product(carry: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        key, *products = carry
        key, k_matvec = rng.split(key)
        return (key, *[w - step * a for w, a in zip(products, matvec(products, k_matvec))])

    key, *products = repeat(length, one_product, (key, *b))
    return [n_terms * step * w for w in products], key


def fixed_point(
    matvec: Matvec, b: Tensor, *, v0: Tensor | None = None, maxiter: int = 10, tol: float = 0.0,
    step: float = 1.0,
) -> Tensor:
    """Gradient descent on ½vᵀAv − bᵀv, v ← v − step (A v − b): `maxiter` matvecs.

    From v0 = 0 its k-th iterate equals the (k−1)-term Neumann sum; with a warm start it is the
    fixed-point iteration of Grazzi et al. (2020).
    """
    v = torch.zeros_like(b) if v0 is None else v0
    threshold = tol * torch.linalg.vector_norm(b)

    def iteration(carry: Carry) -> Carry:
        (v,) = carry
        residual = matvec(v) - b
        active = (torch.linalg.vector_norm(residual) > threshold).to(b.dtype)
        return (v - active * step * residual,)

    return repeat(maxiter, iteration, (v,))[0]


# -- Lanczos, one step at a time ----------------------------------------------------------------
def _breakdown_level(dtype: torch.dtype) -> float:
    # β below this fraction of ‖A q‖ means A q lies in the current basis (up to round-off).
    return 100 * torch.finfo(dtype).eps


def lanczos_start(r: Tensor, memory: int, *, tol: float = 0.0) -> Basis:
    """An empty Lanczos basis of `memory` slots whose first vector will be q₁ = r / ‖r‖.

    Slots become inactive once the tracked residual is ≤ tol·‖r‖ (tol = 0: only on breakdown).
    """
    if memory < 1:
        raise ValueError(f"a Lanczos basis needs at least one slot, got {memory}")
    r = r.reshape(-1)
    norm = torch.linalg.vector_norm(r)
    tiny = torch.finfo(r.dtype).tiny
    zeros = r.new_zeros((memory,))
    return {
        "Q": r.new_zeros((memory, r.numel())),      # basis vectors q₁..q_j as rows
        "alpha": zeros,                             # diagonal of T
        "beta": zeros.clone(),                      # beta[i] couples q_{i+1} and q_{i+2}
        "valid": torch.zeros((memory,), dtype=torch.bool, device=r.device),
        "q": r / torch.clamp(norm, min=tiny),       # the vector to multiply by A next
        "q_prev": torch.zeros_like(r),
        "beta_prev": norm.new_zeros(()),
        "pivot": norm.new_ones(()),                 # last pivot of the LDLᵀ factorization of T
        "residual": norm,                           # ‖b − A v_j‖ of the Galerkin iterate (fixed A)
        "threshold": tol * norm,
        "active": norm > tiny,
        "j": torch.zeros((), dtype=torch.int64, device=r.device),
    }


def lanczos_extend(basis: Basis, aq: Tensor) -> Basis:
    """The basis with q = basis["q"] written in the next slot, given aq = A q (one matvec)."""
    q, q_prev, beta_prev = basis["q"], basis["q_prev"], basis["beta_prev"]
    memory = basis["alpha"].shape[0]
    u = aq.reshape(-1) - beta_prev * q_prev
    alpha = torch.dot(q, u)
    omega = u - alpha * q
    beta = torch.linalg.vector_norm(omega)
    tiny = torch.finfo(q.dtype).tiny
    slot = basis["j"]
    active = basis["active"] & (slot < memory)
    write = (torch.arange(memory, device=q.device) == slot) & active
    # Residual of the Galerkin iterate through the pivots of T = L D Lᵀ (Saad §6.7):
    # d_j = α_j − β_{j−1}² / d_{j−1},  ‖r_j‖ = ‖r_{j−1}‖ β_j / |d_j|.
    first = slot == 0
    pivot = alpha - torch.where(first, torch.zeros_like(alpha), beta_prev ** 2 / basis["pivot"])
    pivot = torch.where(pivot.abs() > tiny, pivot, torch.full_like(pivot, tiny))
    residual = basis["residual"] * beta / pivot.abs()
    unbroken = beta > _breakdown_level(q.dtype) * torch.linalg.vector_norm(u)
    keep = active & unbroken & (residual > basis["threshold"])
    mask = active.to(q.dtype)
    return {
        "Q": torch.where(write[:, None], q[None, :], basis["Q"]),
        "alpha": torch.where(write, alpha, basis["alpha"]),
        "beta": torch.where(write, beta, basis["beta"]),
        "valid": basis["valid"] | write,
        "q": mask * omega / torch.clamp(beta, min=tiny) + (1 - mask) * q,
        "q_prev": mask * q + (1 - mask) * q_prev,
        "beta_prev": torch.where(active, beta, beta_prev),
        "pivot": torch.where(active, pivot, basis["pivot"]),
        "residual": torch.where(active, residual, basis["residual"]),
        "threshold": basis["threshold"],
        "active": keep,
        "j": slot + active.to(torch.int64),
    }


def tridiagonal(basis: Basis) -> Tensor:
    """T = Q A Qᵀ on the valid slots, identity on the others (so the small system is never singular)."""
    valid = basis["valid"]
    alpha = torch.where(valid, basis["alpha"], torch.ones_like(basis["alpha"]))
    coupled = valid[:-1] & valid[1:]
    off = torch.where(coupled, basis["beta"][:-1], torch.zeros_like(basis["beta"][:-1]))
    return torch.diag(alpha) + torch.diag(off, 1) + torch.diag(off, -1)


def small_solve(A: Tensor, b: Tensor) -> Tensor:
    """A⁻¹ b for a small dense system (a projected T or G), NaN where A is singular.

    `torch.linalg.solve` checks for singularity with a side-effecting op, which a compiled loop
    body cannot hold: AOTInductor fails to build a step that calls it (torch 2.13, "Expected
    positional argument for parameter argN_1"; also inv, cholesky and lu_factor), and every
    step runs in the fast path's loop. `solve_ex` returns the status instead; a singular system
    gives NaN, which the runner reports as diverged, eager and fast alike (no exception)."""
    solution, info = torch.linalg.solve_ex(A, b)
    return torch.where(info == 0, solution, torch.full_like(solution, float("nan")))


def lanczos_coefficients(basis: Basis, r: Tensor) -> Tensor:
    """s = T⁻¹ Q r: the correction Qᵀs minimizes ½wᵀAw − rᵀw over the span of the basis."""
    rhs = torch.where(basis["valid"], basis["Q"] @ r.reshape(-1), torch.zeros_like(basis["alpha"]))
    return small_solve(tridiagonal(basis), rhs)


def _extended(matvec: Matvec, basis: Basis, count: int, shape: torch.Size) -> Basis:
    """The basis after `count` extensions (one matvec each), as one loop."""
    names = list(basis)

    def extend(carry: Carry) -> Carry:
        basis = dict(zip(names, carry))
        basis = lanczos_extend(basis, matvec(basis["q"].reshape(shape)))
        return tuple(basis[name] for name in names)

    return dict(zip(names, repeat(count, extend, tuple(basis[name] for name in names))))


def lanczos(
    matvec: Matvec, b: Tensor, *, v0: Tensor | None = None, maxiter: int = 10, tol: float = 0.0,
    step: float = 1.0,
) -> Tensor:
    """Lanczos solve of A v = b: `maxiter` matvecs (+1 when warm-started).

    Basis extension stops (masked) once the residual estimate is ≤ tol·‖b − A v0‖ or on breakdown.
    `step` is accepted for the common signature and ignored.
    """
    v = torch.zeros_like(b) if v0 is None else v0
    r = b - matvec(v) if v0 is not None else b
    basis = _extended(matvec, lanczos_start(r, maxiter, tol=tol), maxiter, b.shape)
    # Right-hand side Q r0 = ‖r0‖ e₁: exact in exact arithmetic, and unlike the explicit product it
    # keeps the CG equivalence once round-off has cost the basis its orthogonality (float32).
    e1 = (torch.arange(maxiter, device=b.device) == 0).to(b.dtype)
    s = small_solve(tridiagonal(basis), torch.linalg.vector_norm(r) * e1)
    return v + (basis["Q"].T @ s).reshape(b.shape)


def lanczos_tridiagonal(matvec: Matvec, b: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """(Q, T, ‖b‖) after k Lanczos steps from b: Q (k, n) orthonormal rows, T = Q A Qᵀ tridiagonal."""
    basis = _extended(matvec, lanczos_start(b, k), k, b.shape)
    return basis["Q"], tridiagonal(basis), torch.linalg.vector_norm(b)


# -- small Galerkin systems and the 2-dim subspace iteration ----------------------------------
def orthonormal_rows(W: Tensor) -> Tensor:
    """Gram–Schmidt on the rows of W (k, n), fixed count; a dependent row becomes zero."""
    rows = []
    for i in range(W.shape[0]):
        w = W[i]
        for q in rows:
            w = w - torch.dot(q, w) * q
        norm = torch.linalg.vector_norm(w)
        scale = torch.linalg.vector_norm(W[i])
        independent = norm > _breakdown_level(W.dtype) ** 0.5 * scale
        rows.append(torch.where(independent, w / torch.where(independent, norm, torch.ones_like(norm)),
                                torch.zeros_like(w)))
    return torch.stack(rows)


def galerkin_coefficients(W: Tensor, AW: Tensor, r: Tensor) -> Tensor:
    """c = (W A Wᵀ)⁻¹ W r over the rows of W (k, n), given AW = rows A w_i; zero rows are ignored.

    W c is then the minimizer of ½wᵀAw − rᵀw over the span of the rows.
    """
    used = torch.linalg.vector_norm(W, dim=1) > 0
    G = W @ AW.T
    G = 0.5 * (G + G.T)
    both = used[:, None] & used[None, :]
    G = torch.where(both, G, torch.eye(W.shape[0], dtype=W.dtype, device=W.device))
    rhs = torch.where(used, W @ r.reshape(-1), torch.zeros_like(G[0]))
    return small_solve(G, rhs)


def subspace(
    matvec: Matvec, b: Tensor, *, v0: Tensor | None = None, maxiter: int = 10, tol: float = 0.0,
    step: float = 1.0,
) -> Tensor:
    """2-dim subspace iterations on A v = b (SubBiO's subspace, η = step): `maxiter` matvecs
    (+1 when warm-started).

    The first matvec is A b (its Galerkin step along b starts the iteration when v0 is None);
    each further iteration multiplies one new direction and recycles A v from the last ones.
    `tol` freezes the iterate once ‖A v − b‖ ≤ tol·‖b‖ (masked).
    """
    shape = b.shape
    b = b.reshape(-1)
    ab = matvec(b.reshape(shape)).reshape(-1)
    w1 = orthonormal_rows(b[None, :])[0]
    ab1 = ab * (w1.norm() / torch.clamp(b.norm(), min=torch.finfo(b.dtype).tiny))  # A w1
    if v0 is None:
        c = galerkin_coefficients(w1[None, :], ab1[None, :], b)
        v, av = c[0] * w1, c[0] * ab1
    else:
        v = v0.reshape(-1)
        av = matvec(v0).reshape(-1)
    threshold = tol * torch.linalg.vector_norm(b)

    def iteration(carry: Carry) -> Carry:
        v, av = carry
        # Second direction: the gradient step from v (orthogonalized against b's direction).
        d = v - step * (av - b)
        W = orthonormal_rows(torch.stack([w1, d]))
        aw2 = matvec(W[1].reshape(shape)).reshape(-1)
        AW = torch.stack([ab1, aw2])
        c = galerkin_coefficients(W, AW, b)
        active = (torch.linalg.vector_norm(av - b) > threshold).to(b.dtype)
        return active * (W.T @ c) + (1 - active) * v, active * (AW.T @ c) + (1 - active) * av

    return repeat(maxiter - 1, iteration, (v, av))[0].reshape(shape)


# -- the interchangeable solvers of the AID family ----------------------------------------------
SOLVERS: dict[str, Callable[..., Tensor]] = {
    "cg": conjugate_gradient,
    "neumann": neumann,
    "fixed_point": fixed_point,
}


def get_linear_solver(name: str) -> Callable[..., Tensor]:
    """The linear solver registered under `name` (cg, neumann, fixed_point)."""
    try:
        return SOLVERS[name]
    except KeyError:
        raise ValueError(f"unknown linear solver {name!r}; choose one of {sorted(SOLVERS)}") from None
