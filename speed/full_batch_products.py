"""What ESJ's full-batch inner steps cost in kernels, and what other kernels would give.

    .venv/bin/python speed/full_batch_products.py [--threads N]

ESJ's default fast step on ijcnn1 (logreg) is T = 10 full-batch gradient steps for Q + 1 = 11
points: each a (11, d) x (d, n) product (the margins, on the rows' transposed copy), a sigmoid
of the (11, n) margins, and a (11, n) x (n, d) product (the row mean), d = 22, n = 40,000
(problems/_logistic.py). On random data of those shapes, float32, with `--threads` threads (one
by default, as the benchmark), this prints µs:

- a bound: ESJ's products (2 x 2 x 11 x d x n flops per inner step) at the rate of a large square
  sgemm (1024^3, MKL, the rate these skinny products could at best reach) plus the sigmoid of
  the margins as eager computes it, for the 10 steps;
- eager: each part alone (MKL sgemm; Sleef's expf for the sigmoid) and exp alone;
- one pass: the op ESJ's step calls (`row_kernels.sigmoid_row_mean`: all three parts in one pass
  over blocks of rows, the native kernel when it builds), one inner step and the 10;
- compiled: `torch.compile` of the 10 steps as ESJ computes them, and with Inductor's C++ GEMM
  template (`max_autotune`, backends CPP and ATEN, `cpp.threads` = `--threads`):
  - the row mean written as a bmm, on the rows as they are and zero-padded to 24 columns;
  - both products as bmms on rows zero-padded to 24 and to 32 columns, the points' y padded
    alike (the padded columns of the rows are zero, so the padded entries of y stay zero).

Every variant's 10 steps are checked against the same steps in float64 (max abs diff printed
next to its time): a kernel that is fast and wrong shows as wrong. Findings (docs/fast-vs-jax.md)
come from this script; it changes nothing in the suite.
"""
from __future__ import annotations

import argparse
import time
from typing import Callable

import torch
import torch.nn.functional as F

from benchopt_bilevel import native, row_kernels

N_ROWS, N_FEATURES, N_POINTS, N_STEPS = 40_000, 22, 11, 10
STEP, REGULARIZATION = 0.1, 0.01


def best_us(function, *args, repeats: int = 50, rounds: int = 5) -> float:
    """The best of `rounds` averages of `repeats` calls, in µs, after warm-up calls."""
    for _ in range(3):
        function(*args)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            function(*args)
        best = min(best, (time.perf_counter() - start) / repeats)
    return best * 1e6


def inner_steps(margins: Callable | None, row_mean: Callable | None, one_pass: bool = False) -> Callable:
    """N_STEPS gradient steps of the points `ys` with the given products, on layouts `data`, or
    with the one-pass op (`one_pass`)."""
    def run(ys, data):
        for _ in range(N_STEPS):
            if one_pass:
                mean = row_kernels.sigmoid_row_mean(data["rows"], data["rows_t"], ys)
            else:
                mean = row_mean(torch.sigmoid(-margins(ys, data)), data) / N_ROWS
            ys = ys - STEP * (-mean + REGULARIZATION * ys)
        return ys
    return run


# The products on the layouts of `layouts` below: "rows" (n, d), "rows_t" (d, n) and the padded
# copies "rows_<width>" (n, width), "rows_t_<width>" (width, n).
def mm_margins(ys, data):
    return ys @ data["rows_t"]


def mm_row_mean(weights, data):
    return weights @ data["rows"]


def bmm_row_mean(weights, data):
    return torch.bmm(weights[None], data["rows"][None])[0]


def padded_bmm_row_mean(weights, data):
    return torch.bmm(weights[None], data["rows_24"][None])[0, :, :N_FEATURES]


def bmm_margins_padded(width: int) -> Callable:
    return lambda ys, data: torch.bmm(ys[None], data[f"rows_t_{width}"][None])[0]


def bmm_row_mean_padded(width: int) -> Callable:
    return lambda weights, data: torch.bmm(weights[None], data[f"rows_{width}"][None])[0]


def layouts(rows: torch.Tensor) -> dict[str, torch.Tensor]:
    data = {"rows": rows, "rows_t": rows.T.contiguous()}
    for width in (24, 32):
        padded = F.pad(rows, (0, width - rows.shape[1])).contiguous()
        data[f"rows_{width}"], data[f"rows_t_{width}"] = padded, padded.T.contiguous()
    return data


def compiled_us(name: str, run: Callable, ys: torch.Tensor, data: dict, exact: torch.Tensor) -> None:
    """Compile `run`, print its µs for the 10 steps and its max abs diff to the float64 steps."""
    torch._dynamo.reset()
    compiled = torch.compile(run)
    diff = (compiled(ys, data)[:, :N_FEATURES].double() - exact).abs().max().item()
    print(f"{name}: {best_us(compiled, ys, data, repeats=10):.0f} µs (max abs diff to float64 {diff:.1e})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch and Inductor threads (default 1)")
    threads = parser.parse_args().threads
    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    rows = torch.randn(N_ROWS, N_FEATURES, generator=generator)
    data = layouts(rows)
    ys = 0.1 * torch.randn(N_POINTS, N_FEATURES, generator=generator)
    exact = inner_steps(mm_margins, mm_row_mean)(ys.double(), {k: v.double() for k, v in data.items()})
    margins = mm_margins(ys, data)
    weights = torch.sigmoid(-margins)
    square = torch.randn(1024, 1024, generator=generator)
    peak = 2 * 1024**3 / best_us(torch.matmul, square, square, repeats=5) / 1e3  # GFLOP/s
    products_us = N_STEPS * 2 * 2 * N_POINTS * N_FEATURES * N_ROWS / peak / 1e3
    sigmoid_us = N_STEPS * best_us(torch.sigmoid, margins)
    print(f"bound for {N_STEPS} inner steps: products at the 1024^3 sgemm's {peak:.0f} GFLOP/s {products_us:.0f} µs "
          f"+ sigmoid of the margins {sigmoid_us:.0f} µs = {products_us + sigmoid_us:.0f} µs")
    print(f"{threads} thread(s). eager, one inner step: margins {best_us(mm_margins, ys, data):.0f}, "
          f"sigmoid {best_us(torch.sigmoid, margins):.0f} (exp alone {best_us(torch.exp, margins):.0f}), "
          f"row mean {best_us(mm_row_mean, weights, data):.0f}; on the rows padded to 24 columns "
          f"{best_us(torch.matmul, weights, data['rows_24']):.0f}")
    print(f"eager, {N_STEPS} inner steps: {best_us(inner_steps(mm_margins, mm_row_mean), ys, data, repeats=10):.0f} µs")
    one_pass = inner_steps(None, None, one_pass=True)
    diff = (one_pass(ys, data).double() - exact).abs().max().item()
    print(f"one pass ({native.status(row_kernels.KERNEL)}): one inner step "
          f"{best_us(row_kernels.sigmoid_row_mean, data['rows'], data['rows_t'], ys):.0f} µs, {N_STEPS} inner steps "
          f"{best_us(one_pass, ys, data, repeats=10):.0f} µs (max abs diff to float64 {diff:.1e})")
    import torch._inductor.config as inductor_config  # noqa: PLC0415

    with inductor_config.patch({"cpp.threads": threads}):
        compiled_us(f"compiled, {N_STEPS} inner steps", inner_steps(mm_margins, mm_row_mean), ys, data, exact)
        with inductor_config.patch(max_autotune=True, max_autotune_gemm_backends="CPP,ATEN"):
            template = "compiled with the C++ GEMM template"
            for name, row_mean in (("bmm", bmm_row_mean), ("bmm on rows padded to 24", padded_bmm_row_mean)):
                compiled_us(f"{template}, row mean as {name}", inner_steps(mm_margins, row_mean), ys, data, exact)
            for width in (24, 32):
                padded_ys = F.pad(ys, (0, width - N_FEATURES))
                run = inner_steps(bmm_margins_padded(width), bmm_row_mean_padded(width))
                compiled_us(f"{template}, both products as bmms on rows padded to {width}", run, padded_ys, data, exact)


if __name__ == "__main__":
    main()
