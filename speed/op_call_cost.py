"""What a call of the one-pass op costs from inside an AOTInductor library (a probe).

    .venv/bin/python speed/op_call_cost.py

The fast path's libraries call `row_kernels.sigmoid_row_mean`, a `torch.library` op written in
Python, back through torch's dispatcher. This builds two small libraries, each a `while_loop` of
n gradient-like steps on 16 rows and 11 points (too small for the arithmetic to count): one
calling the op, one computing the same in plain tensor ops that Inductor compiles into the
library. It prints µs per loop iteration for n = 1,000; the difference is the op call's cost.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from benchopt_bilevel import row_kernels

ROWS = torch.randn(16, 3, generator=torch.Generator().manual_seed(0))
ROWS_T = ROWS.T.contiguous()


class Loop(torch.nn.Module):
    def __init__(self, with_op: bool) -> None:
        super().__init__()
        self.with_op = with_op

    def forward(self, n: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        def condition(i, ys):
            return i < n

        def body(i, ys):
            if self.with_op:
                mean = row_kernels.sigmoid_row_mean(ROWS, ROWS_T, ys)
            else:
                mean = row_kernels.composite(ROWS, ROWS_T, ys)
            return i + 1, ys + 0.01 * mean

        start = (torch.zeros((), dtype=torch.int64), ys)
        return torch._higher_order_ops.while_loop(condition, body, start)[1]


def us_per_iteration(run, ys: torch.Tensor, n: int = 1_000, repeats: int = 20) -> float:
    steps = torch.tensor(n)
    run(steps, ys)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run(steps, ys)
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def main() -> None:
    torch.set_num_threads(1)
    ys = 0.1 * torch.randn(11, 3)
    with tempfile.TemporaryDirectory() as directory:
        for name, with_op in (("op call", True), ("plain ops", False)):
            program = torch.export.export(Loop(with_op), (torch.tensor(3), ys))
            package = torch._inductor.aoti_compile_and_package(program, package_path=str(Path(directory) / f"{name}.pt2"))
            run = torch._inductor.aoti_load_package(package)
            print(f"{name}: {us_per_iteration(run, ys):.1f} µs per loop iteration")


if __name__ == "__main__":
    main()
