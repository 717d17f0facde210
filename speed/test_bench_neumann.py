"""Cost of the random-length Neumann product (Ghadimi & Wang 2018, Algorithm 3) in BSA, TTSA,
SUSTAIN and BiAdam on ijcnn1 (`logreg`, batch 64, float32, CPU, one thread).

Each solver runs with Q = NEUMANN_TERMS terms, so the drawn length p ~ U{0, …, Q−1} has the
integer mean (Q−1)/2 = MEAN_LENGTH, against the same solver whose product is replaced by exactly
MEAN_LENGTH products (same key consumption, same scaling): the cost a random length should have.
The two run interleaved, ROUNDS rounds of STEPS steps each, from the same start, and the median
per-round mean is compared: target ratio random / fixed ≤ TARGET_RATIO (a ratio within one run,
since timings on the shared machine are noisy). BSA runs with its inner count fixed, so that
only the product differs between the two.

Run with `make speed` or
`pytest speed/test_bench_neumann.py --benchmark-only --benchmark-columns=mean,rounds`;
µs per step and the ratio are in extra_info (`--benchmark-json` to keep them).
"""
from __future__ import annotations

import dataclasses
import os
import statistics
import sys
import time

import pytest
import torch

from benchopt_bilevel import rng
from benchopt_bilevel.oracles import Oracles
from benchopt_bilevel.registry import get_problem, get_solver

SOLVERS = ("bsa", "ttsa", "sustain", "biadam")
NEUMANN_TERMS = 11  # Q: p ~ U{0..10}, mean 5
MEAN_LENGTH = (NEUMANN_TERMS - 1) // 2
ROUNDS = int(os.environ.get("BENCH_NEUMANN_ROUNDS", "15"))
STEPS = int(os.environ.get("BENCH_NEUMANN_STEPS", "40"))
TARGET_RATIO = 1.25
THREADS = int(os.environ.get("BENCH_THREADS", "1"))  # batch-64 steps are too small to share


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def problem():
    cls = get_problem("logreg")
    return cls(cls.Params(), torch.Generator().manual_seed(0)).to("cpu", torch.float32)


def fixed_length_product(matvec, b, *, key, n_terms, step):
    """Q η Π_{j≤MEAN_LENGTH} (I − η A_{B_j}) b: the product at its mean length, every time."""
    key, _ = rng.split(key)  # the key the random length would have taken
    products = list(b)
    for _ in range(MEAN_LENGTH):
        key, k_matvec = rng.split(key)
        products = [w - step * a for w, a in zip(products, matvec(products, k_matvec))]
    return [n_terms * step * w for w in products], key


def _solver(name: str):
    cls = get_solver(name)
    fields = {f.name for f in dataclasses.fields(cls.Params)}
    params = {"n_neumann_terms": NEUMANN_TERMS}
    if "inner_growth" in fields:  # BSA: a fixed inner count, the same cost at every step
        params["inner_growth"] = 0.0
    return cls(**params)


def _timed_steps(solver, oracles, state, steps: int):
    start = time.perf_counter()
    for _ in range(steps):
        state = solver.step(oracles, state)
    return time.perf_counter() - start, state


@pytest.mark.parametrize("name", SOLVERS)
def test_random_length_cost(benchmark, monkeypatch, problem, name):
    module = sys.modules[get_solver(name).__module__]
    random_product = module.random_neumann_product
    solver = _solver(name)
    oracles = Oracles(problem)
    key = rng.make_key(0)
    with torch.no_grad():
        start = solver.init(oracles, problem.x0(), problem.y0(), key)
    states = {"random": start, "fixed": dict(start)}
    products = {"random": random_product, "fixed": fixed_length_product}
    per_step: dict[str, list[float]] = {"random": [], "fixed": []}
    hvps: dict[str, int] = {"random": 0, "fixed": 0}

    def measure():
        with torch.no_grad():
            for kind in ("random", "fixed"):  # warm-up: one round each, not recorded
                monkeypatch.setattr(module, "random_neumann_product", products[kind])
                _, states[kind] = _timed_steps(solver, oracles, states[kind], STEPS)
            for _ in range(ROUNDS):
                for kind in ("random", "fixed"):
                    monkeypatch.setattr(module, "random_neumann_product", products[kind])
                    before = oracles.calls["hvp"]
                    seconds, states[kind] = _timed_steps(solver, oracles, states[kind], STEPS)
                    per_step[kind].append(seconds / STEPS)
                    hvps[kind] += oracles.calls["hvp"] - before

    benchmark.pedantic(measure, rounds=1, iterations=1)
    us = {kind: 1e6 * statistics.median(values) for kind, values in per_step.items()}
    ratio = us["random"] / us["fixed"]
    benchmark.extra_info.update(us_per_step_random=us["random"], us_per_step_fixed=us["fixed"], ratio=ratio,
                                hvp_per_step_random=hvps["random"] / (ROUNDS * STEPS),
                                hvp_per_step_fixed=hvps["fixed"] / (ROUNDS * STEPS),
                                n_neumann_terms=NEUMANN_TERMS, mean_length=MEAN_LENGTH, rounds=ROUNDS,
                                steps=STEPS, threads=torch.get_num_threads())
    print(f"\n{name}: random {us['random']:.0f} µs/step, fixed at the mean {us['fixed']:.0f} µs/step, "
          f"ratio {ratio:.2f}; hvp/step {hvps['random'] / (ROUNDS * STEPS):.2f} vs "
          f"{hvps['fixed'] / (ROUNDS * STEPS):.2f}")
    assert all(torch.isfinite(v).all() for v in states["random"].values() if v.is_floating_point())
    assert ratio <= TARGET_RATIO, f"{name}: a random length costs {ratio:.2f}× the fixed mean length"
