"""SABA: SOBA's directions with SAGA variance reduction (Dagréou et al., 2022).

A memory holds, for every inner block i and outer block j, the last value of each oracle:
∇_y g_i, ∇²_yy g_i v, ∇²_xy g_i v, ∇_y f_j, ∇_x f_j. With fresh values at the current (x, y, v)
on drawn blocks i, j, each direction is SAGA's unbiased, variance-reduced estimate

    D = fresh_i − memory_i + mean(memory),   then memory_i ← fresh_i,

and y ← y − ρ D_y, v ← v − ρ D_v, x ← x − γ D_x with constant steps, γ = ρ / outer_ratio (the
reference benchmark's convention; the paper proves linear convergence on strongly convex
problems with constant steps).

The memory starts at zero by default (`memory_init="zero"`, as in the reference benchmark): until
every block has been drawn once, the mean counts the blocks not yet seen as zeros, so the first
directions are shrunk rather than unbiased, and the initialization costs no oracle call.
`memory_init="full"` fills it with one pass over every block at (x₀, y₀, v₀ = 0): unbiased from
the first step, for one full pass of each oracle.

Oracle cost per step: 1 grad_inner, 1 hvp + 1 cross, 1 grad_outer; initialization: nothing with
"zero"; with "full", n_inner_batches of each inner oracle and n_outer_batches grad_outer,
counted and timed.

Reference: M. Dagréou, P. Ablin, S. Vaiter, T. Moreau. "A framework for bilevel optimization
that enables stochastic and global variance reduction algorithms", NeurIPS 2022, arXiv 2201.13409.
"""
from dataclasses import dataclass

import torch

from benchopt_bilevel import rng
from benchopt_bilevel.errors import UserError
from benchopt_bilevel.params import reference
from benchopt_bilevel.solver import Choice, LogUniform, Solver

MEMORY_INITS = ("full", "zero")


@dataclass
class SABAParams:
    step_inner: float = reference(0.1, "solvers/saba.py: step_size")  # ρ
    outer_ratio: float = reference(1.0, "solvers/saba.py: outer_ratio")  # γ = ρ / outer_ratio
    memory_init: str = reference("zero", "solvers/saba.py: mode_init_memory")  # "zero" or "full"


def _saga(memory: torch.Tensor, mean: torch.Tensor, index: torch.Tensor, fresh: torch.Tensor):
    """SAGA direction and the updated (memory, mean); pure (index_copy, not in place)."""
    old = memory.index_select(0, index.view(1))[0]
    direction = fresh - old + mean
    mean = mean + (fresh - old) / memory.shape[0]
    memory = memory.index_copy(0, index.view(1), fresh.unsqueeze(0))
    return direction, memory, mean


class SABA(Solver):
    name = "saba"
    description = "Single-loop with SAGA variance reduction on all three directions"
    reference = "Dagréou et al., NeurIPS 2022, arXiv 2201.13409"
    family = "single loop, variance reduced"
    stochastic = True
    reference_name = "SABA"
    # The reference's solver file names the option mode_init_memory, its configurations init_memory.
    reference_params = {"step_size": "step_inner", "outer_ratio": "outer_ratio",
                        "mode_init_memory": "memory_init", "init_memory": "memory_init"}
    Params = SABAParams
    init_params = ("memory_init",)  # how the memory starts; the step reads only the memory
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "outer_ratio": LogUniform(1e-2, 1e2),
                    "memory_init": Choice(MEMORY_INITS)}

    def __init__(self, params=None, **overrides):
        super().__init__(params, **overrides)
        if self.params.memory_init not in MEMORY_INITS:
            raise UserError(f"saba: memory_init must be one of {', '.join(MEMORY_INITS)}, "
                            f"got {self.params.memory_init!r}")

    def oracle_cost(self, facts):
        return {"grad_inner": 1, "hvp": 1, "cross": 1, "grad_outer": 1}

    def init(self, oracles, x, y, key):
        v = torch.zeros_like(y)
        n_inner, n_outer = oracles.n_inner_batches, oracles.n_outer_batches
        if self.params.memory_init == "full":
            inner = [oracles.grad_hvp_cross_inner(x, y, v, b) for b in torch.arange(n_inner, device=x.device)]
            outer = [oracles.grad_outer(x, y, b) for b in torch.arange(n_outer, device=x.device)]
            memories = {"gy": torch.stack([i[0] for i in inner]), "hvp": torch.stack([i[1] for i in inner]),
                        "cross": torch.stack([i[2] for i in inner]), "fx": torch.stack([o[0] for o in outer]),
                        "fy": torch.stack([o[1] for o in outer])}
        else:  # no oracle call: blocks not drawn yet count as zeros in the mean
            memories = {"gy": y.new_zeros((n_inner, *y.shape)), "hvp": y.new_zeros((n_inner, *y.shape)),
                        "cross": x.new_zeros((n_inner, *x.shape)), "fx": x.new_zeros((n_outer, *x.shape)),
                        "fy": y.new_zeros((n_outer, *y.shape))}
        state = self.initial_state(x, y, key, v=v)
        for name, memory in memories.items():
            state[f"memory_{name}"] = memory
            state[f"mean_{name}"] = memory.mean(0)
        return state

    def step(self, oracles, state):
        rho = self.params.step_inner
        gamma = rho / self.params.outer_ratio
        x, y, v = state["x"], state["y"], state["v"]
        key, k_inner, k_outer = rng.split(state["key"], 3)
        i, j = oracles.sample_inner(k_inner), oracles.sample_outer(k_outer)

        fresh_gy, fresh_hvp, fresh_cross = oracles.grad_hvp_cross_inner(x, y, v, i)
        fresh_fx, fresh_fy = oracles.grad_outer(x, y, j)

        new = {"key": key}
        d = {}
        for name, index, fresh in (("gy", i, fresh_gy), ("hvp", i, fresh_hvp), ("cross", i, fresh_cross),
                                   ("fx", j, fresh_fx), ("fy", j, fresh_fy)):
            d[name], new[f"memory_{name}"], new[f"mean_{name}"] = _saga(
                state[f"memory_{name}"], state[f"mean_{name}"], index, fresh)
        direction_x = d["cross"] + d["fx"]
        new.update(x=x - gamma * direction_x, y=y - rho * d["gy"], v=v - rho * (d["hvp"] + d["fy"]),
                   hypergradient=direction_x)
        return new
