"""The benchmark clock: synchronize the device, then read perf_counter.

Asynchronous backends return from a kernel launch before the work is done; reading the clock
without synchronizing measures dispatch, not compute (the pitfall of callback clocks that never
synchronize). The runner times steps with it (stopping it during evaluation), and profiling
times steps and single oracle calls with it.
"""
from __future__ import annotations

import time

import torch


class Clock:
    """Accumulates synchronized time over the intervals between `start()` and `stop()`."""

    def __init__(self, device: torch.device) -> None:
        self._synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self.elapsed = 0.0
        self._started_at: float | None = None

    def now(self) -> float:
        self._synchronize()
        return time.perf_counter()

    def start(self) -> None:
        self._started_at = self.now()

    def stop(self) -> float:
        """Stop the clock; returns the total time accumulated so far."""
        assert self._started_at is not None, "clock stopped before it was started"
        self.elapsed += self.now() - self._started_at
        self._started_at = None
        return self.elapsed
