"""Derivative oracles of a problem, built with torch.func and counted by kind.

Each oracle uses the problem's hand-derived version when it defines a method of the same name
(structure-aware oracles are several times faster, see docs/design.md) and falls back to
torch.func otherwise; `Oracles(problem, autograd=True)` forces the torch.func versions, which
the tests use as the reference. Every call adds to `calls[kind]`; full-batch calls are counted
under `kind + "_full"`. Solvers reach derivatives only through this object.

Conventions (g = inner, f = outer, v has the shape of y, u the shape of x):
    hvp_inner(x, y, v)     = ∇²_yy g · v          (shape of y)
    cross_inner(x, y, v)   = ∇²_xy g · v          (shape of x)
    cross_t_inner(x, y, u) = ∇²_yx g · u          (shape of y)
    fixed_point_map(x, y)  = T(x, y), whose fixed point is y*(x)  (the problem's `inner_map`, or
                             the gradient step y − α ∇_y g)
    y_start(x)             = where the inner problem of a batch starts
"""
from __future__ import annotations

from collections import Counter
from typing import Callable, Mapping

import torch
from torch.func import grad, jvp, vjp

from .facts import ProblemFacts
from .problem import Problem
from . import linalg, rng

Tensor = torch.Tensor
Batch = "Tensor | None"

ORACLE_KINDS = ("grad_inner", "grad_outer", "hvp", "cross", "value_inner", "value_outer")


class Oracles:
    """Counted first- and second-order oracles of one problem."""

    def __init__(self, problem: Problem, autograd: bool = False) -> None:
        self.problem = problem
        self.calls: Counter[str] = Counter()
        self.n_inner_batches = problem.n_inner_batches
        self.n_outer_batches = problem.n_outer_batches
        # Static facts about the problem a step may branch on (Python values, never tensors).
        self.facts = ProblemFacts.of(problem)  # what a solver's declared cost may depend on
        self.episodic: bool = problem.episodic  # one inner problem per batch (task or image batch)
        self.constrained: bool = problem.constrained  # y must stay feasible (project_y)
        self.y_rows: int = problem.y_rows  # y as (y_rows, -1): rows a root finder may solve apart
        self._autograd = autograd
        self._rows = 1  # calls counted per call: the rows of a `map_rows` while it runs
        g, f = problem.inner, problem.outer
        self._grad_g_y = grad(g, argnums=1)
        self._grad_g_xy = grad(g, argnums=(0, 1))
        self._grad_f_xy = grad(f, argnums=(0, 1))

    # -- bookkeeping ---------------------------------------------------------------------------
    def _count(self, kind: str, batch: Tensor | None, times: int = 1) -> None:
        # Not while torch.compile traces: a Python counter inside a compiled chunk would become a
        # guard that fails at every call (a recompile per chunk); the runner counts compiled
        # steps from the solver's declared cost instead.
        if torch.compiler.is_compiling():
            return
        self.calls[kind if batch is not None else kind + "_full"] += times * self._rows

    def map_rows(self, name: str, fn: Callable[..., Tensor], in_dims: tuple[int | None, ...],
                 *args: Tensor) -> Tensor:
        """`fn` (which calls these oracles) on every row of the arguments with in_dim 0, as one
        batched computation (`linalg.map_rows`); each oracle call inside counts once per row."""
        if torch.compiler.is_compiling():  # nothing is counted (`_count`), nothing to set
            return linalg.map_rows(name, fn, in_dims, *args)
        self._rows = next(a.shape[0] for a, d in zip(args, in_dims) if d == 0)
        try:
            return linalg.map_rows(name, fn, in_dims, *args)
        finally:
            self._rows = 1

    def _own(self, name: str) -> Callable | None:
        """The problem's hand-derived oracle `name`, unless autograd is forced. Callers test it
        with `is None`: dynamo (torch 2.11) takes a bound method's truthiness inside a
        `while_loop` body for data-dependent control flow and breaks the graph."""
        return None if self._autograd else getattr(self.problem, name, None)

    def reset_counts(self) -> None:
        self.calls.clear()

    def total_calls(self, counts: Mapping[str, float] | None = None) -> float:
        """All calls (`counts`, by default the calls so far), a full-batch call weighing as many
        as the mini-batch blocks it covers."""
        total = 0.0
        for kind, count in (self.calls if counts is None else counts).items():
            if kind.endswith("_full"):
                weight = self.n_outer_batches if "outer" in kind else self.n_inner_batches
                total += count * weight
            else:
                total += count
        return total

    # -- sampling ------------------------------------------------------------------------------
    def sample_inner(self, key: Tensor) -> Tensor:
        """A uniformly drawn inner mini-batch block (pure: the same key gives the same block)."""
        return rng.randint(key, self.n_inner_batches)

    def sample_outer(self, key: Tensor) -> Tensor:
        return rng.randint(key, self.n_outer_batches)

    def project_y(self, y: Tensor) -> Tensor:
        return self.problem.project_y(y)

    def y_start(self, x: Tensor, batch: Tensor | None) -> Tensor:
        """Start of the inner problem of `batch` (per batch on episodic problems; not counted)."""
        return self.problem.y_start(x, batch)

    def y_start_vjp(self, x: Tensor, batch: Tensor | None, w: Tensor) -> Tensor:
        """wᵀ ∂y_start/∂x (x-shaped): how the start moves with x, for a method that differentiates
        through the whole inner path. Not counted, like `y_start`: it involves neither f nor g."""
        _, pullback = vjp(lambda x_: self.problem.y_start(x_, batch), x)
        return pullback(w)[0]

    # -- the inner problem as a fixed point y = T(x, y) -----------------------------------------
    # T is the problem's `inner_map` when it states one, else the gradient step y − step ∇_y g
    # (`step` is the solver's and is ignored by a problem's own map). An evaluation of T is
    # counted as a grad_inner call and a vjp of T as an hvp (its y part) and a cross call (its x
    # part), what they cost for the gradient step.
    def fixed_point_map(self, x: Tensor, y: Tensor, batch: Tensor | None, step: float) -> Tensor:
        """T(x, y), whose fixed point is y*(x): one grad_inner call."""
        own = self.problem.inner_map
        if own is None:
            return y - step * self.grad_inner_y(x, y, batch)
        self._count("grad_inner", batch)
        return own(x, y, batch)

    def fixed_point_vjp_y(self, x: Tensor, y: Tensor, w: Tensor, batch: Tensor | None, step: float) -> Tensor:
        """∂_y Tᵀ w alone (one iteration of a backward fixed-point solve): one hvp call."""
        own = self.problem.inner_map
        if own is None:
            return w - step * self.hvp_inner(x, y, w, batch)
        self._count("hvp", batch)
        _, pullback = vjp(lambda y_: own(x, y_, batch), y)
        return pullback(w)[0]

    def fixed_point_vjp(self, x: Tensor, y: Tensor, w: Tensor, batch: Tensor | None,
                        step: float) -> tuple[Tensor, Tensor]:
        """(∂_y Tᵀ w, ∂_x Tᵀ w) from one vjp of T: one hvp and one cross call."""
        own = self.problem.inner_map
        if own is None:
            hvp, cross = self.hvp_cross_inner(x, y, w, batch)
            return w - step * hvp, -step * cross
        self._count("hvp", batch)
        self._count("cross", batch)
        _, pullback = vjp(lambda x_, y_: own(x_, y_, batch), x, y)
        cross, hvp = pullback(w)
        return hvp, cross

    def grad_hvp_cross_inner(
        self, x: Tensor, y: Tensor, v: Tensor, batch: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(∇_y g, ∇²_yy g · v, ∇²_xy g · v) at one point and batch: one gradient, one HVP and one
        cross call. A problem may compute them in one pass over the batch's data (its
        `grad_hvp_cross_inner`): memory-bound problems read their samples once instead of twice."""
        own = self._own("grad_hvp_cross_inner")
        if own is None:
            return (self.grad_inner_y(x, y, batch), *self.hvp_cross_inner(x, y, v, batch))
        for kind in ("grad_inner", "hvp", "cross"):
            self._count(kind, batch)
        return own(x, y, v, batch)

    # -- values --------------------------------------------------------------------------------
    def value_inner(self, x: Tensor, y: Tensor, batch: Tensor | None) -> Tensor:
        self._count("value_inner", batch)
        return self.problem.inner(x, y, batch)

    def value_outer(self, x: Tensor, y: Tensor, batch: Tensor | None) -> Tensor:
        self._count("value_outer", batch)
        return self.problem.outer(x, y, batch)

    # -- first order ---------------------------------------------------------------------------
    def grad_inner_y(self, x: Tensor, y: Tensor, batch: Tensor | None) -> Tensor:
        """∇_y g(x, y)."""
        self._count("grad_inner", batch)
        own = self._own("grad_inner_y")
        return own(x, y, batch) if own is not None else self._grad_g_y(x, y, batch)

    def grad_inner(self, x: Tensor, y: Tensor, batch: Tensor | None) -> tuple[Tensor, Tensor]:
        """(∇_x g, ∇_y g) for the price of one gradient."""
        self._count("grad_inner", batch)
        own = self._own("grad_inner")
        return own(x, y, batch) if own is not None else self._grad_g_xy(x, y, batch)

    def grad_inner_x(self, x: Tensor, y: Tensor, batch: Tensor | None) -> Tensor:
        return self.grad_inner(x, y, batch)[0]

    def grad_outer(self, x: Tensor, y: Tensor, batch: Tensor | None) -> tuple[Tensor, Tensor]:
        """(∇_x f, ∇_y f) for the price of one gradient."""
        self._count("grad_outer", batch)
        own = self._own("grad_outer")
        return own(x, y, batch) if own is not None else self._grad_f_xy(x, y, batch)

    def grad_outer_x(self, x: Tensor, y: Tensor, batch: Tensor | None) -> Tensor:
        return self.grad_outer(x, y, batch)[0]

    def grad_outer_y(self, x: Tensor, y: Tensor, batch: Tensor | None) -> Tensor:
        return self.grad_outer(x, y, batch)[1]

    # -- second order --------------------------------------------------------------------------
    def hvp_inner(self, x: Tensor, y: Tensor, v: Tensor, batch: Tensor | None) -> Tensor:
        """∇²_yy g(x, y) · v (forward-over-reverse)."""
        self._count("hvp", batch)
        own = self._own("hvp_inner")
        if own is not None:
            return own(x, y, v, batch)
        return jvp(lambda y_: self._grad_g_y(x, y_, batch), (y,), (v,))[1]

    def cross_inner(self, x: Tensor, y: Tensor, v: Tensor, batch: Tensor | None) -> Tensor:
        """∇²_xy g(x, y) · v: the x-gradient of <∇_y g, v> (reverse mode)."""
        self._count("cross", batch)
        own = self._own("cross_inner")
        if own is not None:
            return own(x, y, v, batch)
        _, pullback = vjp(lambda x_: self._grad_g_y(x_, y, batch), x)
        return pullback(v)[0]

    def cross_t_inner(self, x: Tensor, y: Tensor, u: Tensor, batch: Tensor | None) -> Tensor:
        """∇²_yx g(x, y) · u: the change of ∇_y g along x-direction u (forward mode)."""
        self._count("cross", batch)
        own = self._own("cross_t_inner")
        if own is not None:
            return own(x, y, u, batch)
        return jvp(lambda x_: self._grad_g_y(x_, y, batch), (x,), (u,))[1]

    def hvp_cross_inner(
        self, x: Tensor, y: Tensor, v: Tensor, batch: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """(∇²_yy g · v, ∇²_xy g · v) from one vjp of ∇_y g: one HVP and one cross call."""
        self._count("hvp", batch)
        self._count("cross", batch)
        own = self._own("hvp_cross_inner")
        if own is not None:
            return own(x, y, v, batch)
        if self._own("hvp_inner") is not None and self._own("cross_inner") is not None:
            return self.problem.hvp_inner(x, y, v, batch), self.problem.cross_inner(x, y, v, batch)
        _, pullback = vjp(lambda x_, y_: self._grad_g_y(x_, y_, batch), x, y)
        cross, hvp = pullback(v)
        return hvp, cross
