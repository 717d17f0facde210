"""What one fused pass over the rows would give ESJ's inner steps (a probe, not part of the suite).

    pip install ninja                      # torch's C++ extension builder needs it
    .venv/bin/python speed/fused_row_pass.py

ESJ's inner step on ijcnn1 is two skinny products around a sigmoid (speed/full_batch_products.py):
margins (11, d) x (d, n), weights sigmoid(-margins), row mean (11, n) x (n, d), d = 22,
n = 40,000. Library kernels read the rows twice and write the (11, n) margins in between; this
probe does all three in one pass over 16-row blocks of the transposed rows: the 11 margins of
the block in vector lanes, their sigmoid (glibc's vector expf), and the block's share of the row
mean added to per-lane accumulators. Written here in plain C++ and left to the compiler's
vectoriser (-O3 -march=native -ffast-math), one thread. It prints µs for one inner step and for
ESJ's 10, against eager's 10 in the same process, each checked against the same steps in
float64. It changes nothing in the suite: no solver or problem uses it (docs/fast-vs-jax.md says
what it would take).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import full_batch_products as products  # noqa: E402

SOURCE = r"""
#include <torch/extension.h>
#include <cmath>

// rows_t (D, n) and ys (Q, D), float32: returns sigmoid(-ys @ rows_t) @ rows_t.T, (Q, D).
template <int Q, int D>
torch::Tensor fused_row_mean(const torch::Tensor& rows_t, const torch::Tensor& ys) {
  constexpr int B = 16;  // rows per block: one AVX-512 vector of lanes
  const int64_t n = rows_t.size(1);
  const float* __restrict a = rows_t.data_ptr<float>();
  const float* __restrict y = ys.data_ptr<float>();
  alignas(64) float acc[Q][D][B] = {};
  int64_t i0 = 0;
  for (; i0 + B <= n; i0 += B) {
    alignas(64) float m[Q][B] = {};
    for (int j = 0; j < D; ++j) {
      const float* __restrict aj = a + j * n + i0;
      for (int q = 0; q < Q; ++q) {
        const float yqj = y[q * D + j];
#pragma omp simd
        for (int l = 0; l < B; ++l) m[q][l] += aj[l] * yqj;
      }
    }
    for (int q = 0; q < Q; ++q)
#pragma omp simd
      for (int l = 0; l < B; ++l) m[q][l] = 1.f / (1.f + std::exp(m[q][l]));
    for (int j = 0; j < D; ++j) {
      const float* __restrict aj = a + j * n + i0;
      for (int q = 0; q < Q; ++q)
#pragma omp simd
        for (int l = 0; l < B; ++l) acc[q][j][l] += m[q][l] * aj[l];
    }
  }
  auto out = torch::zeros({Q, D}, ys.options());
  float* o = out.data_ptr<float>();
  for (; i0 < n; ++i0)  // the last rows, one at a time
    for (int q = 0; q < Q; ++q) {
      float margin = 0.f;
      for (int j = 0; j < D; ++j) margin += a[j * n + i0] * y[q * D + j];
      const float weight = 1.f / (1.f + std::exp(margin));
      for (int j = 0; j < D; ++j) o[q * D + j] += weight * a[j * n + i0];
    }
  for (int q = 0; q < Q; ++q)
    for (int j = 0; j < D; ++j)
      for (int l = 0; l < B; ++l) o[q * D + j] += acc[q][j][l];
  return out;
}

torch::Tensor row_mean(const torch::Tensor& rows_t, const torch::Tensor& ys) {
  TORCH_CHECK(ys.size(0) == 11 && ys.size(1) == 22 && rows_t.size(0) == 22, "built for ESJ's shapes on ijcnn1");
  return fused_row_mean<11, 22>(rows_t.contiguous(), ys.contiguous());
}
"""
FLAGS = ["-O3", "-march=native", "-ffast-math", "-fopenmp-simd", "-mprefer-vector-width=512"]


def main() -> None:
    try:
        import ninja  # noqa: F401,PLC0415
    except ImportError:
        raise SystemExit("error: torch's C++ extension builder needs ninja: pip install ninja")
    from torch.utils.cpp_extension import load_inline  # noqa: PLC0415

    start = time.perf_counter()
    kernel = load_inline("esj_fused_row_pass", cpp_sources=SOURCE, functions=["row_mean"], extra_cflags=FLAGS)
    print(f"built in {time.perf_counter() - start:.1f} s ({' '.join(FLAGS)})")
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    data = products.layouts(torch.randn(products.N_ROWS, products.N_FEATURES, generator=generator))
    ys = 0.1 * torch.randn(products.N_POINTS, products.N_FEATURES, generator=generator)
    eager = products.inner_steps(products.mm_margins, products.mm_row_mean)
    exact = eager(ys.double(), {name: rows.double() for name, rows in data.items()})

    def fused(ys: torch.Tensor, data: dict) -> torch.Tensor:  # the same steps as `inner_steps`
        for _ in range(products.N_STEPS):
            row_mean = kernel.row_mean(data["rows_t"], ys)
            ys = ys - products.STEP * (-row_mean / products.N_ROWS + products.REGULARIZATION * ys)
        return ys

    for name, run in (("fused", fused), ("eager", eager)):
        diff = (run(ys, data).double() - exact).abs().max().item()
        print(f"{name}, {products.N_STEPS} inner steps: {products.best_us(run, ys, data, repeats=10):.0f} µs "
              f"(max abs diff to float64 {diff:.1e})")
    print(f"fused, one inner step: {products.best_us(kernel.row_mean, data['rows_t'], ys):.0f} µs")


if __name__ == "__main__":
    main()
