// Statistics reducers: min/max, moments, quantiles by selection, histograms, and the
// squared-error reducer. Semantics: ovq/kernels/reference.py.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ovq/detail.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
#define OVQ_X86 1
#endif

namespace ovq {
namespace {

using detail::Elem;

constexpr float kInf = std::numeric_limits<float>::infinity();

// ------------------------------------------------------------------ min / max inner
// nf accumulates (v - v): 0 for finite values, NaN once a NaN or Inf was seen.
struct MinMaxAcc {
    float mn = kInf, mx = -kInf, nf = 0.0f;
};

template <DType D>
void minmax_scalar(const typename Elem<D>::T* p, int64_t n, int64_t s, MinMaxAcc& a) {
    float mn = a.mn, mx = a.mx, nf = a.nf;
    for (int64_t i = 0; i < n; ++i) {
        const float v = Elem<D>::load(p + i * s);
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
        nf += v - v;
    }
    a.mn = mn;
    a.mx = mx;
    a.nf = nf;
}

#if OVQ_X86
__attribute__((target("avx2,fma,f16c"))) inline float hmin8(__m256 v) {
    __m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_min_ps(m, _mm_movehl_ps(m, m));
    m = _mm_min_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}
__attribute__((target("avx2,fma,f16c"))) inline float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}
__attribute__((target("avx2,fma,f16c"))) inline float hsum8(__m256 v) {
    __m128 m = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_add_ps(m, _mm_movehl_ps(m, m));
    m = _mm_add_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}
__attribute__((target("avx2,fma,f16c"))) inline double hsum4d(__m256d v) {
    __m128d m = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    m = _mm_add_sd(m, _mm_unpackhi_pd(m, m));
    return _mm_cvtsd_f64(m);
}

template <DType D>
__attribute__((target("avx2,fma,f16c"))) inline __m256 load8(const typename Elem<D>::T* p) {
    if constexpr (D == DType::F32) {
        return _mm256_loadu_ps(p);
    } else if constexpr (D == DType::F16) {
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    } else {
        const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
    }
}

template <DType D>
__attribute__((target("avx2,fma,f16c"))) void minmax_avx2(const typename Elem<D>::T* p, int64_t n,
                                                         MinMaxAcc& a) {
    __m256 mn0 = _mm256_set1_ps(a.mn), mn1 = mn0, mx0 = _mm256_set1_ps(a.mx), mx1 = mx0;
    __m256 nf0 = _mm256_setzero_ps(), nf1 = nf0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 v0 = load8<D>(p + i), v1 = load8<D>(p + i + 8);
        mn0 = _mm256_min_ps(v0, mn0);
        mn1 = _mm256_min_ps(v1, mn1);
        mx0 = _mm256_max_ps(v0, mx0);
        mx1 = _mm256_max_ps(v1, mx1);
        nf0 = _mm256_add_ps(nf0, _mm256_sub_ps(v0, v0));
        nf1 = _mm256_add_ps(nf1, _mm256_sub_ps(v1, v1));
    }
    a.mn = hmin8(_mm256_min_ps(mn0, mn1));
    a.mx = hmax8(_mm256_max_ps(mx0, mx1));
    a.nf += hsum8(_mm256_add_ps(nf0, nf1));
    minmax_scalar<D>(p + i, n - i, 1, a);
}
#endif

template <DType D>
void minmax_run(const void* base, int64_t off, int64_t n, int64_t s, MinMaxAcc& a) {
    const auto* p = static_cast<const typename Elem<D>::T*>(base) + off;
#if OVQ_X86
    if (s == 1 && simd_enabled()) return minmax_avx2<D>(p, n, a);
#endif
    minmax_scalar<D>(p, n, s, a);
}

// -------------------------------------------------------------------- moments inner
struct MomAcc {
    float mn = kInf, mx = -kInf;
    double sum = 0.0, sumsq = 0.0;
};

template <DType D>
void moments_scalar(const typename Elem<D>::T* p, int64_t n, int64_t s, MomAcc& a) {
    float mn = a.mn, mx = a.mx;
    double s0 = 0, s1 = 0, q0 = 0, q1 = 0;
    int64_t i = 0;
    for (; i + 2 <= n; i += 2) {
        const float v0 = Elem<D>::load(p + i * s), v1 = Elem<D>::load(p + (i + 1) * s);
        mn = v0 < mn ? v0 : mn;
        mx = v0 > mx ? v0 : mx;
        mn = v1 < mn ? v1 : mn;
        mx = v1 > mx ? v1 : mx;
        const double d0 = v0, d1 = v1;
        s0 += d0;
        s1 += d1;
        q0 += d0 * d0;
        q1 += d1 * d1;
    }
    for (; i < n; ++i) {
        const float v = Elem<D>::load(p + i * s);
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
        const double d = v;
        s0 += d;
        q0 += d * d;
    }
    a.mn = mn;
    a.mx = mx;
    a.sum += s0 + s1;
    a.sumsq += q0 + q1;
}

#if OVQ_X86
template <DType D>
__attribute__((target("avx2,fma,f16c"))) void moments_avx2(const typename Elem<D>::T* p, int64_t n,
                                                          MomAcc& a) {
    __m256 mn = _mm256_set1_ps(a.mn), mx = _mm256_set1_ps(a.mx);
    __m256d s0 = _mm256_setzero_pd(), s1 = s0, q0 = s0, q1 = s0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = load8<D>(p + i);
        mn = _mm256_min_ps(v, mn);
        mx = _mm256_max_ps(v, mx);
        const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
        const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
        s0 = _mm256_add_pd(s0, lo);
        s1 = _mm256_add_pd(s1, hi);
        // Products of widened float32 values are exact in float64, so fma == mul + add.
        q0 = _mm256_fmadd_pd(lo, lo, q0);
        q1 = _mm256_fmadd_pd(hi, hi, q1);
    }
    a.mn = hmin8(mn);
    a.mx = hmax8(mx);
    a.sum += hsum4d(_mm256_add_pd(s0, s1));
    a.sumsq += hsum4d(_mm256_add_pd(q0, q1));
    moments_scalar<D>(p + i, n - i, 1, a);
}
#endif

template <DType D>
void moments_run(const void* base, int64_t off, int64_t n, int64_t s, MomAcc& a) {
    const auto* p = static_cast<const typename Elem<D>::T*>(base) + off;
#if OVQ_X86
    if (s == 1 && simd_enabled()) return moments_avx2<D>(p, n, a);
#endif
    moments_scalar<D>(p, n, s, a);
}

// Generic reducer driver: Acc per task, run(base, off, n, stride, acc), merge into k.
template <class Acc, class Run, class Merge>
void reduce_driver(const Operand& x, const Box& box, Run run, Merge merge) {
    const int64_t splits = detail::splits_for(box);
    const int64_t ntasks = box.k * splits;
    std::vector<Acc> part(static_cast<size_t>(ntasks));
    const int64_t per_task = detail::box_size(box) / splits;
    parallel_for(ntasks, per_task, [&](int64_t t) {
        const int64_t k = t / splits;
        int64_t lo, hi;
        detail::split_range(box.shape[0], splits, t % splits, lo, hi);
        const int64_t base[1] = {x.koff[k]};
        const int64_t* const strides[1] = {x.rstrides};
        Acc& acc = part[static_cast<size_t>(t)];
        detail::walk<1>(base, strides, box, lo, hi, [&](const int64_t* off, int64_t n, const int64_t* s) {
            run(off[0], n, s[0], acc);
        });
    });
    for (int64_t k = 0; k < box.k; ++k) {
        for (int64_t j = 0; j < splits; ++j) merge(k, part[static_cast<size_t>(k * splits + j)]);
    }
}

template <DType D>
bool minmax_t(const Operand& x, const Box& box, float* mn, float* mx) {
    for (int64_t k = 0; k < box.k; ++k) {
        mn[k] = kInf;
        mx[k] = -kInf;
    }
    float nf = 0.0f;
    reduce_driver<MinMaxAcc>(
        x, box, [&](int64_t off, int64_t n, int64_t s, MinMaxAcc& a) { minmax_run<D>(x.data, off, n, s, a); },
        [&](int64_t k, const MinMaxAcc& a) {
            mn[k] = a.mn < mn[k] ? a.mn : mn[k];
            mx[k] = a.mx > mx[k] ? a.mx : mx[k];
            nf += a.nf;
        });
    return nf == 0.0f;
}

template <DType D>
bool moments_t(const Operand& x, const Box& box, float* mn, float* mx, double* sum, double* sumsq) {
    for (int64_t k = 0; k < box.k; ++k) {
        mn[k] = kInf;
        mx[k] = -kInf;
        sum[k] = 0.0;
        sumsq[k] = 0.0;
    }
    reduce_driver<MomAcc>(
        x, box, [&](int64_t off, int64_t n, int64_t s, MomAcc& a) { moments_run<D>(x.data, off, n, s, a); },
        [&](int64_t k, const MomAcc& a) {
            mn[k] = a.mn < mn[k] ? a.mn : mn[k];
            mx[k] = a.mx > mx[k] ? a.mx : mx[k];
            sum[k] += a.sum;
            sumsq[k] += a.sumsq;
        });
    bool ok = true;
    for (int64_t k = 0; k < box.k; ++k) ok = ok && std::isfinite(sum[k]) && std::isfinite(sumsq[k]);
    return ok;
}

// -------------------------------------------------------------------------- quantile
template <DType D>
bool quantile_t(const Operand& x, const Box& box, const double* q, int nq, bool absolute,
                double* out) {
    const int64_t r = detail::box_size(box);
    std::vector<int> order(static_cast<size_t>(nq));
    for (int i = 0; i < nq; ++i) order[static_cast<size_t>(i)] = i;
    std::sort(order.begin(), order.end(), [&](int a, int b) { return q[a] < q[b]; });
    std::vector<char> finite(static_cast<size_t>(box.k), 1);
    parallel_for(box.k, r, [&](int64_t k) {
        std::vector<float> buf(static_cast<size_t>(r));
        float* w = buf.data();
        float nf = 0.0f;
        const int64_t base[1] = {x.koff[k]};
        const int64_t* const strides[1] = {x.rstrides};
        detail::walk<1>(base, strides, box, 0, box.shape[0], [&](const int64_t* off, int64_t n, const int64_t* s) {
            const auto* p = static_cast<const typename Elem<D>::T*>(x.data) + off[0];
            for (int64_t i = 0; i < n; ++i) {
                const float v = Elem<D>::load(p + i * s[0]);
                nf += v - v;
                *w++ = absolute ? std::fabs(v) : v;
            }
        });
        if (nf != 0.0f) {
            finite[static_cast<size_t>(k)] = 0;
            return;
        }
        int64_t done = 0;  // [0, done) holds the smallest `done` values, partitioned
        for (int oi = 0; oi < nq; ++oi) {
            const int idx = order[static_cast<size_t>(oi)];
            const double h = static_cast<double>(r - 1) * q[idx];
            const int64_t i = static_cast<int64_t>(std::floor(h));
            const int64_t j = std::min<int64_t>(i + 1, r - 1);
            if (i >= done) std::nth_element(buf.begin() + done, buf.begin() + i, buf.end());
            done = i + 1;
            const double vi = buf[static_cast<size_t>(i)];
            const double vj = j == i ? vi : *std::min_element(buf.begin() + i + 1, buf.end());
            out[idx * box.k + k] = vi + (h - static_cast<double>(i)) * (vj - vi);
        }
    });
    for (char f : finite)
        if (!f) return false;
    return true;
}

// ------------------------------------------------------------------------- histogram
template <DType D>
bool histogram_t(const Operand& x, const Box& box, const double* lo, const double* hi,
                 int64_t bins, bool absolute, int64_t* out) {
    const int64_t width = bins + 2;
    const int64_t splits = detail::splits_for(box);
    const int64_t ntasks = box.k * splits;
    std::vector<int64_t> part(static_cast<size_t>(ntasks * width), 0);
    std::vector<float> nfs(static_cast<size_t>(ntasks), 0.0f);
    parallel_for(ntasks, detail::box_size(box) / splits, [&](int64_t t) {
        const int64_t k = t / splits;
        int64_t r0, r1;
        detail::split_range(box.shape[0], splits, t % splits, r0, r1);
        const double l = lo[k], h = hi[k], scale = static_cast<double>(bins) / (h - l);
        int64_t* cnt = part.data() + t * width;
        float nf = 0.0f;
        const int64_t base[1] = {x.koff[k]};
        const int64_t* const strides[1] = {x.rstrides};
        detail::walk<1>(base, strides, box, r0, r1, [&](const int64_t* off, int64_t n, const int64_t* s) {
            const auto* p = static_cast<const typename Elem<D>::T*>(x.data) + off[0];
            for (int64_t i = 0; i < n; ++i) {
                const float f = Elem<D>::load(p + i * s[0]);
                nf += f - f;
                if (f != f) continue;  // NaN: counted in nf, no slot
                const double v = absolute ? std::fabs(static_cast<double>(f)) : static_cast<double>(f);
                int64_t slot;
                if (v < l) {
                    slot = 0;
                } else if (v > h) {
                    slot = bins + 1;
                } else {
                    double b = std::floor((v - l) * scale);
                    if (b > static_cast<double>(bins - 1)) b = static_cast<double>(bins - 1);
                    slot = static_cast<int64_t>(b) + 1;
                }
                ++cnt[slot];
            }
        });
        nfs[static_cast<size_t>(t)] = nf;
    });
    bool ok = true;
    for (int64_t k = 0; k < box.k; ++k) {
        for (int64_t b = 0; b < width; ++b) {
            int64_t c = 0;
            for (int64_t j = 0; j < splits; ++j) c += part[static_cast<size_t>((k * splits + j) * width + b)];
            out[k * width + b] = c;
        }
    }
    for (float f : nfs) ok = ok && f == 0.0f;
    return ok;
}

// ------------------------------------------------------------------------ quant error
template <DType D>
bool quant_error_t(const Operand& x, const Operand& y, const Box& box, double* sse, double* ssx) {
    const int64_t splits = detail::splits_for(box);
    const int64_t ntasks = box.k * splits;
    std::vector<double> pe(static_cast<size_t>(ntasks), 0.0), px(static_cast<size_t>(ntasks), 0.0);
    parallel_for(ntasks, detail::box_size(box) / splits, [&](int64_t t) {
        const int64_t k = t / splits;
        int64_t r0, r1;
        detail::split_range(box.shape[0], splits, t % splits, r0, r1);
        double e = 0.0, s2 = 0.0;
        const int64_t base[2] = {x.koff[k], y.koff[k]};
        const int64_t* const strides[2] = {x.rstrides, y.rstrides};
        detail::walk<2>(base, strides, box, r0, r1, [&](const int64_t* off, int64_t n, const int64_t* s) {
            const auto* px_ = static_cast<const typename Elem<D>::T*>(x.data) + off[0];
            const auto* py_ = static_cast<const typename Elem<D>::T*>(y.data) + off[1];
            for (int64_t i = 0; i < n; ++i) {
                const double a = Elem<D>::load(px_ + i * s[0]);
                const double b = Elem<D>::load(py_ + i * s[1]);
                const double d = a - b;
                e += d * d;
                s2 += a * a;
            }
        });
        pe[static_cast<size_t>(t)] = e;
        px[static_cast<size_t>(t)] = s2;
    });
    bool ok = true;
    for (int64_t k = 0; k < box.k; ++k) {
        double e = 0.0, s2 = 0.0;
        for (int64_t j = 0; j < splits; ++j) {
            e += pe[static_cast<size_t>(k * splits + j)];
            s2 += px[static_cast<size_t>(k * splits + j)];
        }
        sse[k] = e;
        ssx[k] = s2;
        ok = ok && std::isfinite(e) && std::isfinite(s2);
    }
    return ok;
}

}  // namespace

#define OVQ_DISPATCH(dt, call)                  \
    switch (dt) {                               \
        case DType::F32: {                      \
            constexpr DType D = DType::F32;     \
            return call;                        \
        }                                       \
        case DType::F16: {                      \
            constexpr DType D = DType::F16;     \
            return call;                        \
        }                                       \
        default: {                              \
            constexpr DType D = DType::BF16;    \
            return call;                        \
        }                                       \
    }

bool minmax(DType dt, const Operand& x, const Box& box, float* mn, float* mx) {
    OVQ_DISPATCH(dt, minmax_t<D>(x, box, mn, mx))
}
bool moments(DType dt, const Operand& x, const Box& box, float* mn, float* mx, double* sum,
             double* sumsq) {
    OVQ_DISPATCH(dt, moments_t<D>(x, box, mn, mx, sum, sumsq))
}
bool quantile(DType dt, const Operand& x, const Box& box, const double* q, int nq, bool absolute,
              double* out) {
    OVQ_DISPATCH(dt, quantile_t<D>(x, box, q, nq, absolute, out))
}
bool histogram(DType dt, const Operand& x, const Box& box, const double* lo, const double* hi,
               int64_t bins, bool absolute, int64_t* out) {
    OVQ_DISPATCH(dt, histogram_t<D>(x, box, lo, hi, bins, absolute, out))
}
bool quant_error(DType dt, const Operand& x, const Operand& y, const Box& box, double* sse,
                 double* ssx) {
    OVQ_DISPATCH(dt, quant_error_t<D>(x, y, box, sse, ssx))
}

}  // namespace ovq
