"""Inductor options of fast builds (`fast.py`): what AOTInductor is told when it builds a
library. One place, so that a change here is part of the build's identity (the cache key hashes
this file with the rest of the engine's code)."""
from __future__ import annotations

from typing import Any

# Passed as `inductor_configs` to `aoti_compile_and_package`.
INDUCTOR_OPTIONS: dict[str, Any] = {
    # Single-threaded kernels whatever torch.get_num_threads() is when the library is built
    # (Inductor reads it at code generation, default cpp.threads = -1, and wraps loops with
    # enough work in OpenMP regions). A fast step is microseconds of arithmetic: SOBA on ijcnn1
    # built by a 2-thread process ran 1.2x slower on one thread and 1.7x slower on two than this
    # build (OpenMP fork/join per step; best of 128-step calls, speed/profile_fast_step.py
    # --compare, --threads 2 for the latter; 12x in 1024-step calls on a loaded machine).
    "cpp.threads": 1,
}
# Measured and not kept (speed/profile_fast_step.py --option): "memory_planning": True and
# "aot_inductor.allow_stack_allocation": True (fewer allocations per step) both fail to compile
# the wrapper of a while_loop (torch 2.13: subgraph buffers referenced out of scope, stack
# tensors assigned to heap handles); "realize_opcount_threshold": 20 (to compute a batch draw
# once instead of inlining its hash in every gather) still inlined it, with 24 allocations
# instead of 16; inlined draws cost nothing measurable anyway (the oracles-only variant).
