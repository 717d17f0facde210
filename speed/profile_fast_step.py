"""Where a fast-path step's time goes: a solver on logreg (ijcnn1, batch 64, float32, one thread)
exported as one while_loop (`benchopt_bilevel/fast.py`) and built with AOTInductor.

    .venv/bin/python speed/profile_fast_step.py [--solver soba] [--variant full|sampling|oracles]
                                                [--dump DIR] [--save PKG] [--threads 1]
    .venv/bin/python speed/profile_fast_step.py --solver soba --compare A.pt2 B.pt2 ...

prints the aten ops of the exported loop body, the kernels and extern calls of the generated C++
(read from the built package; `--dump DIR` keeps its sources), and the library's µs per step.
`--save` keeps the package; `--compare` times saved packages of one solver in one process, calls
interleaved, so that a shared, loaded machine affects them alike (compare their ratios).
`--variant sampling` keeps the batch draws and replaces the logistic oracles by a cheap stand-in
that still reads the drawn batch (so nothing is dead code); `--variant oracles` keeps the oracles
and replaces each draw's hash by the key modulo the block count (the keys are still split). Comparing the three says
how much of a step is sampling and how much the oracles.

Findings (torch 2.13, AVX-512 CPU shared by several jobs, load average ~14 on 2 cores: absolute
figures are inflated and noisy, ratios within one --compare run are what to read). One run of

    profile_fast_step.py --compare before.pt2 sampling.pt2 after.pt2 cheap_draws.pt2 \
        built_with_2_threads.pt2 --steps 128 --repeats 300

(packages saved with --save from the code before and after the logistic oracles' change) gave
µs per step, SOBA: 16.6 before, 10.2 after (0.61x); sampling only 5.4; after with the draws'
hash replaced by key mod count 10.2 (the hash, inlined by Inductor in each gather loop, costs
nothing measurable); after but built by a 2-thread process and run on one thread 12.2. SABA
(`--solver saba`, same run length): 29.2 before, 23.4 after (0.80x).

- Before, each step called three extern (1, 64) @ (64, 22) products (mm through the C shim and
  the dispatcher): the weighted row sums of ∇_y g, ∇²_yy g v and ∇_y f. Written as a broadcast
  and sum when compiled (`problems/_logistic.weighted_row_sum`), they fuse into the step's one
  kernel: SOBA's loop body is one fused kernel and the loop condition's, no extern call.
- What remains is mostly the wrapper, not arithmetic: `perf record` of `--compare after.pt2
  --steps 1024 --repeats 300`, read over the last 15 % of the run (`perf report --sort dso
  --time 85%-100%`) without Python (its exit-time GC), puts about half of the samples in glibc
  malloc/free (each intermediate and each new carry is a 64-byte aligned
  `aoti_torch_empty_strided`: memalign bypasses glibc's tcache), ~30 % in TensorImpl and handle
  management (libtorch, c10) and ~20 % in the library itself (kernels and wrapper); SOBA
  allocates 13 buffers per step (7 of them the new carry). `memory_planning` and
  `aot_inductor.allow_stack_allocation` would pool or stack them but do not compile with a
  while_loop (see fast_options.py).
- The allocator: run under tcmalloc instead (what the command line now does,
  `benchopt_bilevel/allocator.py`), the same saved libraries took SOBA 7.1–7.2 µs per step against
  12.1–20.2 under glibc, AmIGO 69–72 against 110–128 (2 runs each of `LD_PRELOAD=... python
  speed/profile_fast_step.py --solver S --compare S.pt2 --steps 128 --repeats 500` (200 for
  AmIGO), a few minutes apart; jemalloc 7.8–8.5 and 69–73). What is left per inner-loop
  iteration is handle management: the wrapper re-wraps every carry and every closed-over input
  (`aoti_torch_assign_tensors_out`) for the loop's condition and again for its body, so a loop
  with 16 inputs creates ~32 tensor handles per iteration (F2SA's dumped wrapper, `--dump`).
- SABA's extra ~13 µs over SOBA are its five SAGA memories: `index_copy` is functional, so each
  step copies 3 x 625 x 22 + 2 x 156 x 22 floats (~190 KB) into fresh carries.
- Threads: Inductor generates OpenMP regions from torch.get_num_threads() at build time (one
  in SOBA's step when built by a 2-thread process). Run with 2 threads, that library took
  18.0 µs per step against 10.5 for a build with `cpp.threads` = 1 (`--threads 2 --compare ...
  --steps 128 --repeats 100`); 12x slower in 1024-step calls on the loaded machine. Fast builds
  are therefore single-threaded (`cpp.threads` in fast_options.py; no OpenMP region then, even
  built by a 2-thread process).
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import re
import shutil
import sys
import tempfile
import time
import zipfile
from collections import Counter
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchopt_bilevel import fast, fast_options, rng  # noqa: E402
from benchopt_bilevel.fixtures import build_problem  # noqa: E402
from benchopt_bilevel.oracles import Oracles  # noqa: E402
from benchopt_bilevel.registry import get_solver  # noqa: E402


class OraclesWithCheapDraws(Oracles):
    """The oracles on a block given by the key modulo the block count (one op instead of the
    hash of `rng.randint`): the gathers stay data-dependent, the draws cost nothing."""

    def sample_inner(self, key: torch.Tensor) -> torch.Tensor:
        return key % self.n_inner_batches

    def sample_outer(self, key: torch.Tensor) -> torch.Tensor:
        return key % self.n_outer_batches


class SamplingOnly(Oracles):
    """Batch draws kept, oracles replaced by a few elementwise ops that read the drawn index."""

    @staticmethod
    def _stand_in(like: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        return like * 0.5 + batch.to(like.dtype) * 1e-6

    def grad_hvp_cross_inner(self, x, y, v, batch):
        return self._stand_in(y, batch), self._stand_in(v, batch), self._stand_in(x, batch)

    def grad_outer(self, x, y, batch):
        return self._stand_in(x, batch), self._stand_in(y, batch)

    def grad_inner_y(self, x, y, batch):
        return self._stand_in(y, batch)

    def hvp_cross_inner(self, x, y, v, batch):
        return self._stand_in(v, batch), self._stand_in(x, batch)


VARIANTS = {"full": Oracles, "oracles": OraclesWithCheapDraws, "sampling": SamplingOnly}


def loop_body_ops(program: torch.export.ExportedProgram) -> Counter[str]:
    """aten ops inside the while_loop's body graph(s) of an exported program, by name."""
    ops: Counter[str] = Counter()
    for name, module in program.graph_module.named_modules():
        if "body" not in name:
            continue
        for node in module.graph.nodes:
            if node.op == "call_function" and hasattr(node.target, "_schema"):
                ops[str(node.target).replace("aten.", "").split(".")[0]] += 1
    return ops


def generated_code_summary(package: str, dump: str | None) -> dict[str, int]:
    """Kernels and calls of the C++ in a built package (the wrapper and its kernels)."""
    source = ""
    with zipfile.ZipFile(package) as archive:
        for member in archive.namelist():
            if member.endswith(".cpp"):
                text = archive.read(member).decode()
                source += text
                if dump:
                    target = Path(dump) / Path(member).name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(text)
    return {
        "kernel definitions (cpp_fused_*)": len(set(re.findall(r"void (cpp_fused_\w+)\(", source))),
        "kernel calls": len(re.findall(r"^\s*cpp_fused_\w+\(", source, re.M)),
        "extern mm/addmm/bmm calls": len(re.findall(r"aoti_torch_cpu_(?:mm|addmm|bmm|addmv|mv)\w*\(", source)),
        "other aoti_torch_* calls": len(re.findall(r"aoti_torch_(?!cpu_(?:mm|addmm|bmm|addmv|mv))\w+\(", source)),
        "empty_strided (allocations)": len(re.findall(r"empty_strided", source)),
        "omp parallel regions": len(re.findall(r"#pragma omp parallel", source)),
    }


def per_step_us(chunk, state: dict, steps: int, repeats: int) -> float:
    """Best µs per step over `repeats` calls of `steps` steps (each call continues the state)."""
    best = float("inf")
    state = chunk(state, steps)  # warm-up
    for _ in range(repeats):
        start = time.perf_counter()
        state = chunk(state, steps)
        best = min(best, (time.perf_counter() - start) / steps * 1e6)
    return best


def compare(packages: list[str], solver, state: dict, steps: int, repeats: int) -> dict[str, float]:
    """Best µs per step of each saved package, timed round-robin in one process."""
    keys = list(state)
    chunks = {path: fast.steps_function(fast.load_library(path), solver, keys) for path in packages}
    states = {path: chunk(state, steps) for path, chunk in chunks.items()}  # warm-up
    best = dict.fromkeys(packages, float("inf"))
    for _ in range(repeats):
        for path, chunk in chunks.items():
            start = time.perf_counter()
            states[path] = chunk(states[path], steps)
            best[path] = min(best[path], (time.perf_counter() - start) / steps * 1e6)
    return best


# A flag per build change of fast_options.py, to build without it: (the change, what the build is then).
WITHOUT_FLAGS = {
    "--outer-loop-fusion": ("without_outer_loop_fusion", "with Inductor's outer-loop fusion (fast builds turn it off)"),
    "--unused-inputs": ("without_unused_subgraph_inputs", "with a handle for every loop input, read or not"),
    "--conditions-by-item": ("with_conditions_read_from_memory", "with loop conditions read through item()"),
    "--repeated-codegen-work": ("without_repeated_codegen_work", "with Inductor's repeated code-generation work"),
    "--invariants-in-loop": ("with_loop_invariants_hoisted", "with a loop's closed-over views made at each iteration"),
    "--heap-buffers": ("with_kernel_only_buffers_on_the_stack", "with every buffer a heap tensor"),
    "--whole-wrapper": ("with_runtime_interface_compiled_once", "with AOTInductor's runtime interface compiled in the wrapper"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solver", default="soba")
    parser.add_argument("--variant", default="full", choices=sorted(VARIANTS))
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads at build and run")
    parser.add_argument("--steps", type=int, default=1024, help="steps per library call")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--dump", default=None, help="a folder to write the generated C++ into")
    parser.add_argument("--ops", action="store_true", help="list the loop body's ops by name")
    for flag, (_, what) in WITHOUT_FLAGS.items():
        parser.add_argument(flag, action="store_true", help=f"build {what}")
    parser.add_argument("--carries-owned", action="store_true",
                        help="build with an owning handle for each loop carry at each iteration (borrowed otherwise)")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="an Inductor option added to fast_options.INDUCTOR_OPTIONS (a Python literal)")
    parser.add_argument("--save", default=None, help="a path to keep the built package at")
    parser.add_argument("--compare", nargs="+", default=None, help="saved packages to time")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    for option in args.option:
        name, value = option.split("=", 1)
        fast_options.INDUCTOR_OPTIONS[name] = ast.literal_eval(value)
    problem = build_problem("logreg", getattr(torch, args.dtype))
    oracles = VARIANTS[args.variant](problem)
    solver = get_solver(args.solver)()
    with torch.no_grad():
        state = solver.init(oracles, problem.x0(), problem.y0(), rng.make_key(0))
    state = {k: v.clone() for k, v in state.items()}
    keys = list(state)
    if args.compare:
        for path, us in compare(args.compare, solver, state, args.steps, args.repeats).items():
            print(f"{us:8.2f} µs/step  {path}")
        return

    start = time.perf_counter()
    program = fast.export_steps(solver, oracles, state)
    export_s = time.perf_counter() - start
    ops = loop_body_ops(program)
    print(f"{args.solver} on logreg ({args.variant}, {args.dtype}, {args.threads} thread(s)), "
          f"options {fast_options.INDUCTOR_OPTIONS}")
    print(f"export {export_s:.1f} s; loop body: {sum(ops.values())} aten ops")
    if args.ops:
        for name, count in ops.most_common():
            print(f"    {count:3d} {name}")

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        with contextlib.ExitStack() as patches:
            for flag, (name, _) in WITHOUT_FLAGS.items():
                if getattr(args, flag.lstrip("-").replace("-", "_")):
                    patches.enter_context(mock.patch.object(fast_options, name, contextlib.nullcontext))
            if args.carries_owned:  # loop carries not borrowed by the body
                patches.enter_context(mock.patch.object(fast_options, "without_unused_subgraph_inputs", functools.partial(
                    fast_options.without_unused_subgraph_inputs, borrow_carries=False)))
            package = fast.build_library(program, f"{folder}/steps.pt2")
        build_s = time.perf_counter() - start
        runner = fast.load_library(package)
        for what, count in generated_code_summary(package, args.dump).items():
            print(f"    {what}: {count}")
        if args.save:
            shutil.copyfile(package, args.save)
    print(f"build {build_s:.1f} s")

    chunk = fast.steps_function(runner, solver, keys)
    us = per_step_us(chunk, state, args.steps, args.repeats)
    print(f"per step: {us:.2f} µs (best of {args.repeats} calls of {args.steps} steps)")


if __name__ == "__main__":
    main()
