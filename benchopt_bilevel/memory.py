"""Peak memory of the measured parts of a run, above what was in use when it started.

The runner opens the meter after the problem (its data) is built and before `solver.init`, and
pauses it around the untimed parts (the warm-up on a copy of the state, every evaluation): the
figure is what the method itself holds (state, oracle intermediates, working tensors), not the
problem's data, the interpreter or PyTorch. Three ways, named in the `memory_method` column:

- `cuda_allocated_delta` (CUDA): torch.cuda.max_memory_allocated minus the memory allocated at
  the start, the peak statistic reset at every (re)start. Tensors only: the caching allocator's
  reserve and the CUDA context are not counted.
- `linux_hwm_delta` (CPU, Linux): the process's resident high-water mark VmHWM (/proc/self/status)
  minus its resident size VmRSS at the start. Writing "5" to /proc/self/clear_refs resets VmHWM
  to VmRSS; before each reset the allocator's free memory is handed back (glibc's malloc_trim,
  tcmalloc's ReleaseFreeMemory, jemalloc's arena purge: `allocator.py`), so that memory
  freed earlier and still resident cannot hide a run's allocations inside the baseline. The
  figure has page granularity and counts anything resident that the process touches during the
  measured parts: Python objects, modules imported lazily on first use (torch.func's first call:
  a few MB), and under `--compile` the compiler's work in this process. A tiny run can read 0.
- `process_peak_rss` (fallback, other systems or where clear_refs cannot be written): the
  process's peak resident size since it started (getrusage): an upper bound that includes the
  interpreter, PyTorch and everything run before; it does not compare methods.

What the numbers look like (CPU, Linux, glibc, one torch thread; `tests/test_memory.py`, run with
`pytest -s tests/test_memory.py` to print the few-shot figures):
- the 5-dimensional quadratic, SOBA, 100 to 200 steps: 0.5 to 2.4 MiB (the first run of a process
  includes torch.func's lazy imports), against 315 MiB for the whole fresh process (more in a
  test process that ran other tests before);
- Omniglot Conv-4 at width 3 (about 1M weights, 4 MiB an iterate), one task, one step: MAML at
  K = 1, 5, 10, 20 inner steps 146, 162, 195, 225 MiB (it keeps its K iterates for the reverse
  pass), iMAML 196, 187, 182, 191 MiB (it keeps none). The first run of a network in a process
  also counts oneDNN's and torch.func's one-time set-up (width 1: 84 MiB by the end of
  `solver.init` in the first run, 4 MiB in the next ones): compare runs of a worker after its first.
- the allocator (the `allocator` column: the command line runs under tcmalloc where it finds it,
  `allocator.py`) decides what a freed block costs: tcmalloc and jemalloc keep freed memory in
  their caches, so runs under different allocators differ; compare rows of one allocator.
- glibc's allocator: once a large block has been freed, glibc raises its mmap threshold (up to
  32 MiB) and serves later blocks of that size from its heap, where freed memory is reused in a
  history-dependent way. Identical runs then differ by up to about ±12 MiB at these sizes (iMAML,
  width 2, K = 1, two steps: 99 to 118 MiB over three `run_cell` calls in one process). With the threshold pinned
  (mallopt M_MMAP_THRESHOLD = 128 KiB) the same runs repeat to within 1 MiB, but every large
  allocation would then be a fresh mmap and its page faults, which would change the timings the
  benchmark measures; we keep the default allocator and read differences smaller than ~15% of a
  run's peak as noise. The figure is the growth of the resident set, page-granular: memory freed
  before the start and reused afterwards adds nothing.
"""
from __future__ import annotations

import re
import resource
import sys

import torch

from . import allocator

CLEAR_REFS = "/proc/self/clear_refs"
STATUS = "/proc/self/status"


def _status_kib(field: str) -> int:
    """A memory field of /proc/self/status (VmHWM, VmRSS), in KiB."""
    with open(STATUS) as status:
        match = re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.MULTILINE)
    if match is None:
        raise OSError(f"no {field} in {STATUS}")
    return int(match.group(1))


def reset_high_water_mark() -> bool:
    """Reset the process's VmHWM to its current VmRSS; False where that is not possible.

    A kernel without the reset (before Linux 4.0) refuses "5" with EINVAL, so a write that
    succeeds is a reset (VmHWM is not re-read here: other threads may move VmRSS meanwhile)."""
    try:
        with open(CLEAR_REFS, "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def process_peak_rss() -> int:
    """The process's peak resident size since it started, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak * (1 if sys.platform == "darwin" else 1024))  # bytes on macOS, KiB on Linux


class PeakMemory:
    """Peak memory of the measured parts of a run above its start; see the module docstring.

    `start()` once, `pause()` and `resume()` around what is not measured, `peak()` at any time
    (-1 before `start()`)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.method = "unknown"  # until start(): a run skipped or failed before it measured nothing
        self._baseline: int | None = None
        self._peak = 0
        self._open = False

    def start(self) -> None:
        if self.device.type == "cuda":
            self.method = "cuda_allocated_delta"
            self._baseline = int(torch.cuda.memory_allocated(self.device))
        else:
            allocator.release_free_memory()
            self.method = "linux_hwm_delta" if reset_high_water_mark() else "process_peak_rss"
            self._baseline = _status_kib("VmRSS") * 1024 if self.method == "linux_hwm_delta" else 0
        self.resume()

    def resume(self) -> None:
        if self._baseline is None or self._open:
            return
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.method == "linux_hwm_delta":
            allocator.release_free_memory()
            reset_high_water_mark()
        self._open = True

    def pause(self) -> None:
        self._peak = self.peak()
        self._open = False

    def peak(self) -> int:
        """Bytes: the largest excess over the start seen in the measured parts so far."""
        if self._baseline is None:
            return -1
        if not self._open:
            return self._peak
        if self.device.type == "cuda":
            current = int(torch.cuda.max_memory_allocated(self.device))
        elif self.method == "linux_hwm_delta":
            current = _status_kib("VmHWM") * 1024
        else:
            return process_peak_rss()
        return max(self._peak, current - self._baseline, 0)
