"""Counter-based random numbers for solver steps.

A step must be a pure tensor function so that a chunk of steps can be compiled: it cannot hold a
`torch.Generator` (not traceable, and its stream differs between CPU and CUDA). Instead the
state carries an integer `key` tensor, as JAX does; batches are drawn by hashing (key, counter)
with integer arithmetic that gives the same numbers on every device and dtype. Initial data
and starting points are drawn with an explicit `torch.Generator` seeded from the run's seed.

Eager on CPU, `split` and small `randint` draws compute the same hash on Python integers: one
tensor op costs microseconds of dispatch, and the ~12 ops of a hash on a one-element tensor made
batch sampling a third of an eager SOBA step on ijcnn1. The integer arithmetic is exact (only
the low 32 bits of each product are kept, as the int64 path does), so both paths give the same
numbers (tests/test_rng.py); compiled or on a GPU the tensor path runs.
"""
from __future__ import annotations

import torch

_MASK32 = 0xFFFFFFFF


def _mix32(z: torch.Tensor) -> torch.Tensor:
    """The `lowbias32` integer hash: products stay below 2**63, so int64 never overflows."""
    z = z & _MASK32
    z = z ^ (z >> 16)
    z = (z * 0x7FEB352D) & _MASK32
    z = z ^ (z >> 15)
    z = (z * 0x846CA68B) & _MASK32
    return z ^ (z >> 16)


def _mix32_int(z: int) -> int:
    """`_mix32` on a Python integer (bit-identical)."""
    z &= _MASK32
    z ^= z >> 16
    z = (z * 0x7FEB352D) & _MASK32
    z ^= z >> 15
    z = (z * 0x846CA68B) & _MASK32
    return z ^ (z >> 16)


_HOST_MAX = 64  # draws up to this size take the integer path on the host


def _on_host(key: torch.Tensor) -> bool:
    """True where reading the key's value is free: eager, on the CPU."""
    return key.device.type == "cpu" and not torch.compiler.is_compiling()


def make_key(seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """A fresh key for a run: an int64 scalar tensor on `device`."""
    seed = (int(seed) * 0x9E3779B1 + 0x85EBCA6B) & _MASK32  # seed 0 must not give key 0
    return _mix32(torch.tensor(seed, dtype=torch.int64, device=device))


def split(key: torch.Tensor, num: int = 2) -> tuple[torch.Tensor, ...]:
    """`num` new independent keys from `key` (the old one must not be reused)."""
    if _on_host(key):
        k = int(key) * 0x9E3779B1
        # scalar_tensor: half the cost of torch.tensor; exact (values below 2**32)
        return tuple(torch.scalar_tensor(_mix32_int(k + i * 0x632BE5AB), dtype=torch.int64) for i in range(1, num + 1))
    counters = torch.arange(1, num + 1, dtype=torch.int64, device=key.device)
    keys = _mix32(key * 0x9E3779B1 + counters * 0x632BE5AB)
    return tuple(keys.unbind(0))


def randint(key: torch.Tensor, high: int, size: tuple[int, ...] = ()) -> torch.Tensor:
    """Integers uniform in [0, high) (bias < high / 2**32, negligible for data sizes)."""
    count = 1
    for s in size:
        count *= s
    if count <= _HOST_MAX and _on_host(key):
        k = int(key)
        values = [_mix32_int(_mix32_int(k + i * 0x2545F491)) % high for i in range(count)]
        if not size:
            return torch.scalar_tensor(values[0], dtype=torch.int64)
        return torch.tensor(values, dtype=torch.int64).reshape(size)
    counters = torch.arange(count, dtype=torch.int64, device=key.device)
    bits = _mix32(_mix32(key + counters * 0x2545F491))
    return (bits % high).reshape(size)


def normal(key: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Standard normal samples by Box-Muller on two hashed uniform streams."""
    count = 1
    for s in shape:
        count *= s
    counters = torch.arange(count, dtype=torch.int64, device=key.device)
    u1 = (_mix32(key + 2 * counters) + 1).to(torch.float64) / (2.0**32 + 1)
    u2 = _mix32(key + 2 * counters + 1).to(torch.float64) / 2.0**32
    z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2 * torch.pi * u2)
    return z.to(dtype).reshape(shape)


def uniform(key: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Uniform samples in [0, 1)."""
    count = 1
    for s in shape:
        count *= s
    counters = torch.arange(count, dtype=torch.int64, device=key.device)
    return (_mix32(key + counters * 0x2545F491).to(torch.float64) / 2.0**32).to(dtype).reshape(shape)
