"""What ESJ's full-batch inner steps cost in kernels, and what other kernels would give.

    .venv/bin/python speed/full_batch_products.py

ESJ's default fast step on ijcnn1 (logreg) is T = 10 full-batch gradient steps for Q + 1 = 11
points: each a (11, d) x (d, n) product (the margins, on the rows' transposed copy), a sigmoid
of the (11, n) margins, and a (11, n) x (n, d) product (the row mean), d = 22, n = 40,000
(problems/_logistic.py). On random data of those shapes, one thread, float32, this prints µs:

- eager: each part alone (MKL sgemm; Sleef's expf for the sigmoid) and exp alone;
- compiled: `torch.compile` of the 10 steps as ESJ computes them, and with Inductor's C++ GEMM
  template (`max_autotune`, backends CPP and ATEN) for the row mean written as a bmm, with the
  rows as they are and zero-padded to a multiple of 8 columns.

Findings (docs/fast-vs-jax.md) come from this script; it changes nothing in the suite.
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

N_ROWS, N_FEATURES, N_POINTS, N_STEPS = 40_000, 22, 11, 10


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


def inner_steps(row_mean):
    """N_STEPS gradient steps of the 11 points, with `row_mean(weights, rows, rows_padded)`."""
    def run(ys, rows_t, rows, rows_padded):
        for _ in range(N_STEPS):
            weights = torch.sigmoid(-(ys @ rows_t))
            ys = ys - 0.1 * (-row_mean(weights, rows, rows_padded) / N_ROWS + 0.01 * ys)
        return ys
    return run


def mm_row_mean(weights, rows, rows_padded):
    return weights @ rows


def bmm_row_mean(weights, rows, rows_padded):
    return torch.bmm(weights[None], rows[None])[0]


def padded_bmm_row_mean(weights, rows, rows_padded):
    return torch.bmm(weights[None], rows_padded[None])[0, :, :N_FEATURES]


def main() -> None:
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    rows = torch.randn(N_ROWS, N_FEATURES, generator=generator)
    rows_t = rows.T.contiguous()
    rows_padded = F.pad(rows, (0, -N_FEATURES % 8)).contiguous()
    ys = 0.1 * torch.randn(N_POINTS, N_FEATURES, generator=generator)
    margins = ys @ rows_t
    weights = torch.sigmoid(-margins)
    print(f"eager, one inner step: margins {best_us(torch.matmul, ys, rows_t):.0f}, "
          f"sigmoid {best_us(torch.sigmoid, margins):.0f} (exp alone {best_us(torch.exp, margins):.0f}), "
          f"row mean {best_us(torch.matmul, weights, rows):.0f}; "
          f"with the rows padded to {rows_padded.shape[1]} columns {best_us(torch.matmul, weights, rows_padded):.0f}")
    arguments = (ys, rows_t, rows, rows_padded)
    print(f"eager, {N_STEPS} inner steps: {best_us(inner_steps(mm_row_mean), *arguments, repeats=10):.0f}")
    import torch._inductor.config as inductor_config  # noqa: PLC0415

    torch._dynamo.reset()
    print(f"compiled, {N_STEPS} inner steps: "
          f"{best_us(torch.compile(inner_steps(mm_row_mean)), *arguments, repeats=10):.0f}")
    with inductor_config.patch(max_autotune=True, max_autotune_gemm_backends="CPP,ATEN"):
        for name, row_mean in (("bmm", bmm_row_mean), ("bmm on padded rows", padded_bmm_row_mean)):
            torch._dynamo.reset()
            us = best_us(torch.compile(inner_steps(row_mean)), *arguments, repeats=10)
            print(f"compiled with the C++ GEMM template, row mean as {name}, {N_STEPS} inner steps: {us:.0f}")


if __name__ == "__main__":
    main()
