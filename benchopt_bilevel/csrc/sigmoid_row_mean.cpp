// sigmoid_row_mean: out[q][j] = (1/n) sum_i sigmoid(-z_qi) a[j][i],  z_qi = sum_k ys[q][k] a[k][i]
//
// The full-batch gradient of a logistic loss for Q points at once (benchopt_bilevel/row_kernels.py):
// a is the rows' transposed copy (D, n), ys the points (Q, D), out (Q, D). Library kernels take
// two passes over the rows (a (Q, D) x (D, n) product, the sigmoid of the (Q, n) margins, then a
// (Q, n) x (n, D) product) and write the margins in between; this reads each block of ROWS rows
// once while it sits in L1: the block's margins (register tiles of points x 2 vectors of rows),
// their sigmoid, and the block's share of the row mean (register tiles of points x features,
// accumulated lane-wise across blocks and summed over lanes at the end). One thread; vectors are
// GCC/Clang vector extensions of 64 bytes, which the compiler maps to the host's instructions
// (-march=native: AVX-512, two AVX2 registers, or NEON).
//
// No torch header: compiled in about a second by benchopt_bilevel/native.py and called through
// ctypes. Built without -ffinite-math-only, so a NaN in ys or a reaches the output (a diverged run
// must look diverged).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <cstddef>
#include <new>

#if defined(__x86_64__)
#define KEEP_IN_REGISTER(x) asm("" : "+v"(x))
#elif defined(__aarch64__)
#define KEEP_IN_REGISTER(x) asm("" : "+w"(x))
#else
#define KEEP_IN_REGISTER(x) (void)0
#endif

namespace {

// Per type: the vector types, the rows per block, and the constants of the exponential
// (`Kernel::sigmoid_neg`). The polynomial is e^r in Horner form, highest degree first.
template <typename T> struct Traits;
template <> struct Traits<float> {
  typedef float V __attribute__((vector_size(64)));
  typedef int32_t IV __attribute__((vector_size(64)));
  static constexpr int ROWS = 256;  // 22 features: a block's rows 22 KB, its weights 11 KB (L1: 32 KB)
  static constexpr float HIGH = 88.f, LOW = -87.f;  // e^z normal between them
  static constexpr float MAGIC = 12582912.f;         // 1.5 * 2^23
  static constexpr int32_t MAGIC_BITS = 0x4B400000, BIAS = 127, MANTISSA = 23;
  static constexpr float LOG2E = 1.44269504088896341f, LN2_HIGH = 0.693359375f, LN2_LOW = -2.12194440e-4f;
  // minimax coefficients of degree 7 on [-ln2/2, ln2/2]: relative error about 1e-7
  static constexpr float POLY[] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f,
                                   1.6666665459e-1f, 5.0000001201e-1f, 1.f, 1.f};
};
template <> struct Traits<double> {
  typedef double V __attribute__((vector_size(64)));
  typedef int64_t IV __attribute__((vector_size(64)));
  static constexpr int ROWS = 128;
  static constexpr double HIGH = 708.0, LOW = -708.0;
  static constexpr double MAGIC = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr int64_t MAGIC_BITS = 0x4338000000000000LL, BIAS = 1023, MANTISSA = 52;
  static constexpr double LOG2E = 1.4426950408889634074, LN2_HIGH = 6.93147180369123816490e-01,
                          LN2_LOW = 1.90821492927058770002e-10;
  // Taylor to r^13 / 13!: the first omitted term is below 2e-17 on [-ln2/2, ln2/2]
  static constexpr double POLY[] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
                                    1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0,
                                    1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0};
};

// Tiles of at most `most`, as even as possible (11 -> 4 4 3, 22 -> 6 6 5 5): no thin last tile,
// whose few accumulators would wait on the FMA latency.
inline int64_t tile(int64_t left, int64_t most) {
  const int64_t count = (left + most - 1) / most;
  return (left + count - 1) / count;
}

template <typename T>
struct Kernel {
  typedef typename Traits<T>::V V;
  typedef typename Traits<T>::IV IV;
  static constexpr int ROWS = Traits<T>::ROWS;
  static constexpr int L = 64 / sizeof(T);  // lanes
  static constexpr int NV = ROWS / L;       // vectors of rows per block

  static inline V load(const T* p) { V v; std::memcpy(&v, p, sizeof(V)); return v; }
  static inline void store(T* p, V v) { std::memcpy(p, &v, sizeof(V)); }

  // 1 / (1 + e^z), lane-wise. e^z = 2^k e^r, k = round(z / ln 2), r = z - k ln 2 in [-ln2/2, ln2/2]
  // (ln 2 in two parts, so r is exact), e^r by the polynomial, 2^k written into the exponent bits.
  // k is rounded by adding 1.5 * 2^(mantissa bits): the sum's low bits are k, so no conversion to
  // integers is needed. z is clamped where e^z leaves the normal range (the weight there is 0 or 1
  // to the type's precision); a NaN passes the clamps. Checked against torch's sigmoid in
  // tests/test_row_kernels.py.
  static inline V sigmoid_neg(V z) {
    typedef Traits<T> C;
    z = z > C::HIGH ? V{} + C::HIGH : z;
    z = z < C::LOW ? V{} + C::LOW : z;
    const V t = z * C::LOG2E + C::MAGIC;
    const V k = t - C::MAGIC;
    V r = z - k * C::LN2_HIGH;
    r = r - k * C::LN2_LOW;
    V p = V{} + C::POLY[0];
    for (size_t i = 1; i < sizeof(C::POLY) / sizeof(T); ++i) p = p * r + C::POLY[i];
    const IV exponent = ((IV)t - (C::MAGIC_BITS - C::BIAS)) << C::MANTISSA;  // (k + bias) << mantissa
    return T(1) / (T(1) + p * (V)exponent);
  }

  // m[q][:] = sigmoid(-z_q) over the block's rows, for the QT points from q0.
  template <int QT>
  static inline void weights_tile(const T* a, int64_t n, int64_t i0, const T* ys, int64_t D, int64_t q0, T* m) {
    for (int v = 0; v < NV; v += 2) {
      V acc[QT][2] = {};
      for (int64_t k = 0; k < D; ++k) {
        const T* ak = a + k * n + i0 + v * L;
        V a0 = load(ak), a1 = load(ak + L);
        for (int q = 0; q < QT; ++q) {
          const T yq = ys[(q0 + q) * D + k];
          acc[q][0] += a0 * yq;
          acc[q][1] += a1 * yq;
        }
      }
      for (int q = 0; q < QT; ++q) {
        store(m + (q0 + q) * ROWS + v * L, sigmoid_neg(acc[q][0]));
        store(m + (q0 + q) * ROWS + (v + 1) * L, sigmoid_neg(acc[q][1]));
      }
    }
  }

  // total[q][j] += m[q][:] * a[j][:] lane-wise, for the QT points from q0 and JT features from j0.
  template <int QT, int JT>
  static inline void mean_tile(const T* a, int64_t n, int64_t i0, const T* m, int64_t D, int64_t q0,
                               int64_t j0, V* total) {
    V acc[QT][JT];
    for (int q = 0; q < QT; ++q)
      for (int j = 0; j < JT; ++j) acc[q][j] = total[(q0 + q) * D + j0 + j];
    for (int v = 0; v < NV; ++v) {
      V mq[QT];
      for (int q = 0; q < QT; ++q) {
        mq[q] = load(m + (q0 + q) * ROWS + v * L);
        KEEP_IN_REGISTER(mq[q]);
      }
      for (int j = 0; j < JT; ++j) {
        V aj = load(a + (j0 + j) * n + i0 + v * L);
        KEEP_IN_REGISTER(aj);  // one load per vector, not one per product (the compiler's choice)
        for (int q = 0; q < QT; ++q) acc[q][j] += mq[q] * aj;
      }
    }
    for (int q = 0; q < QT; ++q)
      for (int j = 0; j < JT; ++j) total[(q0 + q) * D + j0 + j] = acc[q][j];
  }

  template <int QT>
  static inline void mean_points(const T* a, int64_t n, int64_t i0, const T* m, int64_t D, int64_t q0, V* total) {
    for (int64_t j = 0; j < D;) {
      const int64_t jt = tile(D - j, 6);
      switch (jt) {
        case 6: mean_tile<QT, 6>(a, n, i0, m, D, q0, j, total); break;
        case 5: mean_tile<QT, 5>(a, n, i0, m, D, q0, j, total); break;
        case 4: mean_tile<QT, 4>(a, n, i0, m, D, q0, j, total); break;
        case 3: mean_tile<QT, 3>(a, n, i0, m, D, q0, j, total); break;
        case 2: mean_tile<QT, 2>(a, n, i0, m, D, q0, j, total); break;
        default: mean_tile<QT, 1>(a, n, i0, m, D, q0, j, total); break;
      }
      j += jt;
    }
  }

  static void run(const T* a, const T* ys, T* out, int64_t Q, int64_t D, int64_t n) {
    V* total = new V[Q * D]();
    T* m = static_cast<T*>(::operator new(sizeof(T) * Q * ROWS, std::align_val_t(64)));
    int64_t i0 = 0;
    for (; i0 + ROWS <= n; i0 += ROWS) {
      for (int64_t q = 0; q < Q;) {
        const int64_t qt = tile(Q - q, 6);
        switch (qt) {
          case 6: weights_tile<6>(a, n, i0, ys, D, q, m); break;
          case 5: weights_tile<5>(a, n, i0, ys, D, q, m); break;
          case 4: weights_tile<4>(a, n, i0, ys, D, q, m); break;
          case 3: weights_tile<3>(a, n, i0, ys, D, q, m); break;
          case 2: weights_tile<2>(a, n, i0, ys, D, q, m); break;
          default: weights_tile<1>(a, n, i0, ys, D, q, m); break;
        }
        q += qt;
      }
      for (int64_t q = 0; q < Q;) {
        const int64_t qt = tile(Q - q, 3);
        switch (qt) {
          case 3: mean_points<3>(a, n, i0, m, D, q, total); break;
          case 2: mean_points<2>(a, n, i0, m, D, q, total); break;
          default: mean_points<1>(a, n, i0, m, D, q, total); break;
        }
        q += qt;
      }
    }
    for (int64_t e = 0; e < Q * D; ++e) {
      T sum = 0;
      for (int l = 0; l < L; ++l) sum += total[e][l];
      out[e] = sum;
    }
    for (; i0 < n; ++i0)  // the rows after the last whole block, one at a time
      for (int64_t q = 0; q < Q; ++q) {
        T z = 0;
        for (int64_t k = 0; k < D; ++k) z += ys[q * D + k] * a[k * n + i0];
        const T weight = T(1) / (T(1) + std::exp(z));
        for (int64_t j = 0; j < D; ++j) out[q * D + j] += weight * a[j * n + i0];
      }
    for (int64_t e = 0; e < Q * D; ++e) out[e] /= T(n);
    delete[] total;
    ::operator delete(m, std::align_val_t(64));
  }
};

}  // namespace

extern "C" {
void sigmoid_row_mean_float(const float* a, const float* ys, float* out, int64_t Q, int64_t D, int64_t n) {
  Kernel<float>::run(a, ys, out, Q, D, n);
}
void sigmoid_row_mean_double(const double* a, const double* ys, double* out, int64_t Q, int64_t D, int64_t n) {
  Kernel<double>::run(a, ys, out, Q, D, n);
}
}
