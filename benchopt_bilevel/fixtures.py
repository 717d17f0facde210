"""Small problems that build in milliseconds: the fixtures of the conformance rules
(`conformance.py`) and of the repository's tests, defined once here so both use the same ones."""
from __future__ import annotations

from typing import Any

import torch

from .problem import Problem
from .registry import get_problem

# A small, well-conditioned quadratic on which every solver's default parameters converge.
WELL_CONDITIONED = dict(n_inner=64, n_outer=64, dim_x=5, dim_y=5, batch_size=8, noise=0.1,
                        mu_inner=5.0, L_inner=8.0, mu_outer=0.5, L_outer=1.0)


def build_problem(name: str, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu",
                  **params: Any) -> Problem:
    """The registered problem `name` with `params`, its data drawn from its own seed."""
    cls = get_problem(name)
    p = cls.Params(**params)
    return cls(p, torch.Generator().manual_seed(p.seed)).to(device, dtype)


def build_quadratic(dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu",
                    **overrides: Any) -> Problem:
    """The WELL_CONDITIONED quadratic, with `overrides` of its parameters."""
    return build_problem("quadratic", dtype, device, **{**WELL_CONDITIONED, **overrides})
