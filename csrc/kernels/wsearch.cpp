// Data-aware weight compression: the inner loops of AWQ's grid search and of scale
// estimation. Semantics: ovq/kernels/reference.py (awq_errors, group_output_error);
// float32 quantize-dequantize with a true division and round half to even (as
// wcompress.cpp), the MatMul output error accumulated in float64 from the weight error
// (sum_k (w_k - deq_k) x_kn), which avoids subtracting two large products.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ovq/group_params.hpp"
#include "ovq/kernels.hpp"
#include "ovq/simd.hpp"

namespace ovq {
namespace {

using Levels = GroupParams;

// The scale / zero point of one span, from its minimum and maximum.
Levels span_params(const float* v, int64_t n, int bits, bool sym) {
    float mn = INFINITY, mx = -INFINITY;
    for (int64_t i = 0; i < n; ++i) {
        mn = v[i] < mn ? v[i] : mn;
        mx = v[i] > mx ? v[i] : mx;
    }
    return group_params(mn, mx, bits, sym);
}

inline float dequant(float w, float s, float zp, float lo, float hi) {
    float t = std::nearbyint(w / s + zp);
    t = t < lo ? lo : (t > hi ? hi : t);
    return (t - zp) * s;
}

#if OVQ_X86
// The AVX2 part of axpy: four float64 lanes with fused multiply-adds; returns the count done.
__attribute__((target("avx2,fma"))) int64_t axpy_avx2(double d, const float* x, int64_t n, double* y) {
    const __m256d vd = _mm256_set1_pd(d);
    int64_t j = 0;
    for (; j + 4 <= n; j += 4)
        _mm256_storeu_pd(y + j, _mm256_fmadd_pd(vd, _mm256_cvtps_pd(_mm_loadu_ps(x + j)), _mm256_loadu_pd(y + j)));
    return j;
}
#endif

// y[j] += d * x[j] for the n samples of one channel (float64 accumulators).
inline void axpy(double d, const float* x, int64_t n, double* y) {
    int64_t j = 0;
#if OVQ_X86
    if (simd_enabled()) j = axpy_avx2(d, x, n, y);
#endif
    for (; j < n; ++j) y[j] += d * static_cast<double>(x[j]);
}

}  // namespace

void awq_errors(const float* w, int64_t rows, int64_t g, const float* x, int64_t n, const float* s,
                const float* floor, const float* alphas, int64_t na, int bits, bool sym, double* out) {
    parallel_for(na, rows * g * n, [&](int64_t a) {
        std::vector<float> c(static_cast<size_t>(g)), wc(static_cast<size_t>(g));
        std::vector<double> y(static_cast<size_t>(n));
        for (int64_t k = 0; k < g; ++k) {
            const float p = std::pow(s[k], alphas[a]);
            c[static_cast<size_t>(k)] = p > floor[k] ? p : floor[k];
        }
        double acc = 0.0;
        for (int64_t o = 0; o < rows; ++o) {
            const float* wr = w + o * g;
            for (int64_t k = 0; k < g; ++k) wc[static_cast<size_t>(k)] = wr[k] * c[static_cast<size_t>(k)];
            const Levels p = span_params(wc.data(), g, bits, sym);
            std::fill(y.begin(), y.end(), 0.0);
            for (int64_t k = 0; k < g; ++k) {
                const float deq = dequant(wc[static_cast<size_t>(k)], p.s, p.zp, p.lo, p.hi);
                const float d = wr[k] - deq / c[static_cast<size_t>(k)];
                if (d != 0.0f) axpy(static_cast<double>(d), x + k * n, n, y.data());
            }
            for (int64_t j = 0; j < n; ++j) acc += std::fabs(y[static_cast<size_t>(j)]);
        }
        out[a] = acc / (static_cast<double>(rows) * static_cast<double>(n));
    });
}

void group_output_error(const float* w, int64_t rows, int64_t cols, const float* x, int64_t n, const float* scale,
                        const float* zp, int64_t groups, int bits, bool sym, double* out) {
    const int64_t g = cols / groups;
    const float lo = sym ? -static_cast<float>(1 << (bits - 1)) : 0.0f;
    const float hi = sym ? static_cast<float>((1 << (bits - 1)) - 1) : static_cast<float>((1 << bits) - 1);
    parallel_for(rows, cols * n, [&](int64_t o) {
        std::vector<double> y(static_cast<size_t>(n));
        for (int64_t gi = 0; gi < groups; ++gi) {
            const float s = scale[o * groups + gi];
            const float z = zp != nullptr ? zp[o * groups + gi] : 0.0f;
            std::fill(y.begin(), y.end(), 0.0);
            for (int64_t k = gi * g; k < gi * g + g; ++k) {
                const float wv = w[o * cols + k];
                const float d = wv - dequant(wv, s, z, lo, hi);
                if (d != 0.0f) axpy(static_cast<double>(d), x + k * n, n, y.data());
            }
            double acc = 0.0;
            for (int64_t j = 0; j < n; ++j) acc += y[static_cast<size_t>(j)] * y[static_cast<size_t>(j)];
            out[o * groups + gi] = acc / static_cast<double>(n);
        }
    });
}

}  // namespace ovq
