"""The quasi-Newton, subspace, zeroth-order, fixed-point and meta-learning solvers on the fast
path: the exported steps (the graph an AOTInductor library is built from, run without compiling)
give the eager iterates on the float64 quadratic, and their own fixed-count loops are while_loops
(the exported graph does not grow with the count).

Small counts keep each export a few seconds; the options that add code paths are switched on
(SHINE's OPA, line search and refine; DEQ's capped backward). LancBiO with m = 2, growing ×1.5
every 3 steps up to 4, crosses restarts and two growths of its basis within 30 steps.
"""
from __future__ import annotations

import pytest
import torch

from benchopt_bilevel import fast, rng
from benchopt_bilevel.fixtures import build_quadratic
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import get_solver

CASES = {
    "lancbio": ("lancbio", {"n_inner_steps": 2, "dim_start": 2, "dim_growth": 1.5, "dim_freq": 3, "dim_max": 4}),
    "lancbio-defaults": ("lancbio", {}),
    "shine": ("shine", {"n_inner_steps": 3, "memory": 2}),
    "shine-opa-line-search-refine": ("shine", {"n_inner_steps": 3, "opa": True, "line_search": 2, "refine": 2}),
    "subbio": ("subbio", {}),
    "esj": ("esj", {"n_inner_steps": 3, "n_directions": 3}),
    "esj-s": ("esj-s", {"n_inner_steps": 3, "n_directions": 3}),
    "imaml": ("imaml", {"n_inner_steps": 2, "n_cg_steps": 2, "n_tasks": 3}),
    "maml": ("maml", {"n_inner_steps": 2, "n_tasks": 3}),
    "maml-first-order": ("maml", {"n_inner_steps": 2, "n_tasks": 3, "first_order": True}),
    "deq-implicit-capped": ("deq-implicit", {"forward_iters": 3, "backward_iters": 3, "backward": "capped"}),
    "jfb": ("jfb", {"n_inner_steps": 3}),
    "fmd": ("fmd", {"n_inner_steps": 3}),
}
STEP_COUNTS = (4, 30)


def _start(solver, oracles, problem, seed=3):
    with torch.no_grad():
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(seed))
    return {k: v.clone() for k, v in state.items()}  # distinct tensors, as a runner's state


def _eager(solver, oracles, state, n_steps):
    with torch.no_grad():
        for _ in range(n_steps):
            state = solver.step(oracles, state)
    return state


def _assert_close(got, expected, tolerance=1e-12):
    assert set(got) == set(expected)
    for k in expected:
        if expected[k].is_floating_point():
            assert float((got[k] - expected[k]).abs().max()) <= tolerance, k
        else:
            assert torch.equal(got[k], expected[k]), k


@pytest.mark.parametrize("case", sorted(CASES))
def test_exported_steps_give_the_eager_iterates(case):
    name, overrides = CASES[case]
    problem = build_quadratic()
    solver = get_solver(name)(**overrides)
    oracles = Oracles(problem)
    state = _start(solver, oracles, problem)
    chunk = fast.exported_steps(solver, oracles, state)
    for n_steps in STEP_COUNTS:
        got = chunk(dict(state), n_steps)
        _assert_close(got, _eager(solver, oracles, dict(state), n_steps))
        assert not torch.equal(got["x"], state["x"])  # the steps moved x: a comparison of something


def test_lancbio_case_crosses_restarts_and_growths():
    """The premise of the LancBiO case: its dimension grows and its basis restarts within 30 steps."""
    name, overrides = CASES["lancbio"]
    problem = build_quadratic()
    solver = get_solver(name)(**overrides)
    oracles = Oracles(problem)
    state = _start(solver, oracles, problem)
    dims = []
    with torch.no_grad():
        for _ in range(max(STEP_COUNTS)):
            state = solver.step(oracles, state)
            dims.append(float(state["dim"]))
    assert dims[0] == 2 and dims[-1] == 4 and len(set(dims)) == 3


def _graph_size(solver, problem) -> int:
    oracles = Oracles(problem)
    program = fast.export_steps(solver, oracles, _start(solver, oracles, problem))
    return sum(len(m.graph.nodes) for m in program.graph_module.modules() if hasattr(m, "graph"))


@pytest.mark.parametrize("name,count,small,large", [
    ("esj", "n_directions", 2, 5),  # the Q perturbed runs
    ("fmd", "n_inner_steps", 2, 5),  # the T forward-mode inner steps
    ("imaml", "n_tasks", 2, 5),  # the tasks
    ("shine", "n_inner_steps", 3, 5),  # the L-BFGS inner steps (the first is peeled off the loop)
])
def test_own_loops_are_one_body_in_the_graph(name, count, small, large):
    problem = build_quadratic()
    base = {"imaml": {"n_inner_steps": 1, "n_cg_steps": 1}}.get(name, {})
    sizes = [_graph_size(get_solver(name)(**base, **{count: c}), problem) for c in (small, large)]
    assert sizes[0] == sizes[1]


def test_lancbio_library_builds_and_gives_the_eager_iterates(tmp_path):
    """The built library, not only the exported graph: LancBiO's step solves its projected
    tridiagonal system (`linalg.small_solve`), which AOTInductor could not build while it went
    through `torch.linalg.solve` (a side-effecting error check inside the loop body). About 30 s.

    4 steps within 1e-12, as every solver's exported graph; 30 steps, across two restarts and
    two growths of the Krylov basis, within 1e-10. The library's kernels round differently from
    eager (Inductor vectorizes for the CPU it builds on) and the Lanczos recurrence amplifies
    it: basis_Q 1.4e-12 apart after 30 steps on an AVX2 CPU (vectors of 4 doubles), under 1e-12
    on an AVX-512 one (where this check passed at 1e-12). An error of the library's arithmetic
    (a stale basis, a wrong branch) would move entries of an orthonormal basis at their own
    scale, O(1)."""
    problem = build_quadratic()
    name, overrides = CASES["lancbio"]
    solver = get_solver(name)(**overrides)
    oracles = Oracles(problem)
    state = _start(solver, oracles, problem)
    package = fast.build_library(fast.export_steps(solver, oracles, state), str(tmp_path / "lancbio.pt2"))
    chunk = fast.steps_function(fast.load_library(package), solver, list(state))
    _assert_close(chunk(dict(state), 4), _eager(solver, oracles, dict(state), 4))
    _assert_close(chunk(dict(state), 30), _eager(solver, oracles, dict(state), 30), tolerance=1e-10)
