"""SABA: SOBA's directions with SAGA variance reduction (Dagréou et al., 2022).

A memory holds, for every inner block i and outer block j, the last value of each oracle:
∇_y g_i, ∇²_yy g_i v, ∇²_xy g_i v, ∇_y f_j, ∇_x f_j. With fresh values at the current (x, y, v)
on drawn blocks i, j, each direction is SAGA's unbiased, variance-reduced estimate

    D = fresh_i − memory_i + mean(memory),   then memory_i ← fresh_i,

and y ← y − ρ D_y, v ← v − ρ D_v, x ← x − γ D_x with constant steps (the paper proves
linear convergence on strongly convex problems with constant steps).

Oracle cost per step: 1 grad_inner, 1 hvp + 1 cross, 1 grad_outer; initialization fills the
memory with one pass over every block (n_inner_batches of each inner oracle, n_outer_batches
grad_outer), counted and timed.

Reference: M. Dagréou, P. Ablin, S. Vaiter, T. Moreau. "A framework for bilevel optimization
that enables stochastic and global variance reduction algorithms", NeurIPS 2022, arXiv 2201.13409.
"""
from dataclasses import dataclass

import torch

from benchopt_bilevel import rng
from benchopt_bilevel.solver import LogUniform, Solver


@dataclass
class SABAParams:
    step_inner: float = 0.1  # ρ
    outer_ratio: float = 1.0  # γ = ρ · outer_ratio


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
    Params = SABAParams
    search_space = {"step_inner": LogUniform(1e-3, 1.0), "outer_ratio": LogUniform(1e-2, 10.0)}

    def oracle_cost(self, facts):
        return {"grad_inner": 1, "hvp": 1, "cross": 1, "grad_outer": 1}

    def init(self, oracles, x, y, key):
        v = torch.zeros_like(y)
        inner = [oracles.grad_hvp_cross_inner(x, y, v, b)
                 for b in torch.arange(oracles.n_inner_batches, device=x.device)]
        outer = [oracles.grad_outer(x, y, b) for b in torch.arange(oracles.n_outer_batches, device=x.device)]
        state = self.initial_state(x, y, key, v=v)
        for name, values in (("gy", [i[0] for i in inner]), ("hvp", [i[1] for i in inner]),
                             ("cross", [i[2] for i in inner]), ("fx", [o[0] for o in outer]),
                             ("fy", [o[1] for o in outer])):
            state[f"memory_{name}"] = torch.stack(values)
            state[f"mean_{name}"] = state[f"memory_{name}"].mean(0)
        return state

    def step(self, oracles, state):
        rho = self.params.step_inner
        gamma = rho * self.params.outer_ratio
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
