"""Static facts about a problem: what a solver's declared cost or a step may depend on.

Python values fixed when the problem is built (never tensors), so a solver can use them without
holding the problem: `Solver.oracle_cost(facts)` (e.g. forward-mode differentiation pays dim_x
products per inner step), and `Oracles.facts` inside a step.
"""
from __future__ import annotations

from dataclasses import dataclass

from .problem import Problem


@dataclass(frozen=True)
class ProblemFacts:
    dim_x: int
    dim_y: int
    n_inner_batches: int
    n_outer_batches: int
    episodic: bool = False  # one inner problem per batch (a task), restarted from y_start
    constrained: bool = False  # y must stay feasible (project_y)
    twice_differentiable: bool = True  # second-order oracles exist

    @classmethod
    def of(cls, problem: Problem) -> ProblemFacts:
        return cls(dim_x=problem.dim_x, dim_y=problem.dim_y, n_inner_batches=problem.n_inner_batches,
                   n_outer_batches=problem.n_outer_batches, episodic=problem.episodic,
                   constrained=problem.constrained, twice_differentiable=problem.twice_differentiable)
