"""Counter-based random numbers (benchopt_bilevel/rng.py): the host integer path used in eager CPU
steps gives exactly the numbers of the tensor path (compiled, GPU), and draws look uniform."""
from __future__ import annotations

import pytest
import torch

from benchopt_bilevel import rng


def _tensor_path(monkeypatch):
    monkeypatch.setattr(rng, "_on_host", lambda key: False)


@pytest.mark.parametrize("seed", [0, 1, 7, 12345, 2**31 + 11])
def test_host_path_equals_tensor_path(seed, monkeypatch):
    keys = [rng.make_key(seed)]
    for _ in range(20):  # a chain of keys, as steps produce them
        keys.extend(rng.split(keys[-1], 3))
    host = [(rng.split(k, 2), rng.split(k, 5), rng.randint(k, 625), rng.randint(k, 7, (3,)),
             rng.randint(k, 2**31 - 1, (64,))) for k in keys]
    _tensor_path(monkeypatch)
    tensor = [(rng.split(k, 2), rng.split(k, 5), rng.randint(k, 625), rng.randint(k, 7, (3,)),
               rng.randint(k, 2**31 - 1, (64,))) for k in keys]
    for got, want in zip(host, tensor):
        for a, b in zip(got[0] + got[1] + got[2:], want[0] + want[1] + want[2:]):
            assert a.dtype == b.dtype == torch.int64 and a.shape == b.shape
            assert torch.equal(a, b)


def test_draws_are_uniform_and_keys_distinct():
    key = rng.make_key(0)
    draws = []
    seen = set()
    for _ in range(4000):
        key, k_draw = rng.split(key)
        seen.add(int(key))
        draws.append(int(rng.randint(k_draw, 10)))
    assert len(seen) == 4000  # no key repeats along a run
    counts = torch.bincount(torch.tensor(draws), minlength=10).double()
    chi2 = float(((counts - 400) ** 2 / 400).sum())
    assert chi2 < 30  # 9 degrees of freedom: p < 0.001 above 27.9
