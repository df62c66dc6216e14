// Statistics reducers: min/max, moments, quantiles by selection, histograms, and the
// squared-error reducer. Semantics: ovq/kernels/reference.py.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "ovq/detail.hpp"
#include "ovq/simd.hpp"

namespace ovq {
namespace {

using detail::Elem;
#if OVQ_X86
using detail::load8;
#endif

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
// Extreme quantiles (every needed rank within a few thousand of either end) are found in
// one pass: a Keeper holds candidates for the m smallest (or largest) values and a bound
// `t`; a value beyond the bound cannot be among them and is skipped with one compare.
// When the buffer fills, nth_element keeps the m best and tightens t to the m-th best.
// This is exact: every dropped value is >= (<=) m values already kept.
struct Keeper {
    std::vector<float> buf;
    int64_t m = 0;      // candidates to keep (0: inactive)
    size_t cap = 0;     // compaction threshold
    float t;            // accept v < t (low side) / v > t (high side)
    bool low = true;
    void init(int64_t m_, bool low_) {
        m = m_;
        low = low_;
        cap = static_cast<size_t>(2 * m + 32);  // small: compact often, keep t tight
        // An inactive keeper accepts nothing; an active one everything until it fills.
        t = m == 0 ? (low ? -kInf : kInf) : (low ? kInf : -kInf);
        if (m) buf.reserve(cap);
    }
    bool wants(float v) const { return low ? v < t : v > t; }
    void offer(float v) {
        if (!wants(v)) return;
        buf.push_back(v);
        if (buf.size() >= cap) compact();
    }
    void compact() {
        const auto nth = buf.begin() + (m - 1);
        if (low)
            std::nth_element(buf.begin(), nth, buf.end());
        else
            std::nth_element(buf.begin(), nth, buf.end(), [](float a, float b) { return a > b; });
        t = *nth;
        buf.resize(static_cast<size_t>(m));
    }
};

#if OVQ_X86
// Hot loop of keep_avx2, free of calls so its accumulators stay in registers: scans 16
// values per step and stops at the first step with a value beyond a bound.
template <DType D>
__attribute__((target("avx2,fma,f16c"), always_inline)) inline int64_t keep_scan(
    const typename Elem<D>::T* p, int64_t i, int64_t n, __m256 mask, __m256 tl, __m256 th,
    __m256& nf) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    for (; i + 16 <= n; i += 16) {
        const __m256 v0 = _mm256_and_ps(load8<D>(p + i), mask);
        const __m256 v1 = _mm256_and_ps(load8<D>(p + i + 8), mask);
        a0 = _mm256_add_ps(a0, _mm256_sub_ps(v0, v0));
        a1 = _mm256_add_ps(a1, _mm256_sub_ps(v1, v1));
        const __m256 c0 = _mm256_or_ps(_mm256_cmp_ps(v0, tl, _CMP_LT_OQ), _mm256_cmp_ps(v0, th, _CMP_GT_OQ));
        const __m256 c1 = _mm256_or_ps(_mm256_cmp_ps(v1, tl, _CMP_LT_OQ), _mm256_cmp_ps(v1, th, _CMP_GT_OQ));
        if (_mm256_movemask_ps(_mm256_or_ps(c0, c1))) break;
    }
    nf = _mm256_add_ps(nf, _mm256_add_ps(a0, a1));
    return i;
}

// Filters 16 values at a time; a step with a value beyond a bound goes to the keepers
// in order. Returns the number of elements consumed (a multiple of 16).
template <DType D>
__attribute__((target("avx2,fma,f16c"))) int64_t keep_avx2(const typename Elem<D>::T* p, int64_t n,
                                                          bool absolute, Keeper& lo, Keeper& hi,
                                                          float& nf) {
    const __m256 mask = _mm256_castsi256_ps(_mm256_set1_epi32(absolute ? 0x7fffffff : -1));
    __m256 nfv = _mm256_setzero_ps();
    alignas(32) float tmp[16];
    int64_t i = 0;
    for (;;) {
        i = keep_scan<D>(p, i, n, mask, _mm256_set1_ps(lo.t), _mm256_set1_ps(hi.t), nfv);
        if (i + 16 > n) break;
        // nf is already counted; offer only the lanes beyond a bound, in order.
        const __m256 v0 = _mm256_and_ps(load8<D>(p + i), mask);
        const __m256 v1 = _mm256_and_ps(load8<D>(p + i + 8), mask);
        _mm256_store_ps(tmp, v0);
        _mm256_store_ps(tmp + 8, v1);
        const __m256 tl = _mm256_set1_ps(lo.t), th = _mm256_set1_ps(hi.t);
        unsigned bl = static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(v0, tl, _CMP_LT_OQ))) |
                      static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(v1, tl, _CMP_LT_OQ))) << 8;
        unsigned bh = static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(v0, th, _CMP_GT_OQ))) |
                      static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(v1, th, _CMP_GT_OQ))) << 8;
        for (; bl; bl &= bl - 1) lo.offer(tmp[__builtin_ctz(bl)]);
        for (; bh; bh &= bh - 1) hi.offer(tmp[__builtin_ctz(bh)]);
        i += 16;
    }
    nf += hsum8(nfv);
    return i;
}
#endif

template <DType D>
void keep_run(const typename Elem<D>::T* p, int64_t n, int64_t s, bool absolute, Keeper& lo,
              Keeper& hi, float& nf) {
    int64_t i = 0;
#if OVQ_X86
    if (s == 1 && simd_enabled()) i = keep_avx2<D>(p, n, absolute, lo, hi, nf);
#endif
    float f = nf;
    for (; i < n; ++i) {
        float v = Elem<D>::load(p + i * s);
        f += v - v;
        if (absolute) v = std::fabs(v);
        lo.offer(v);
        hi.offer(v);
    }
    nf = f;
}

template <DType D>
bool quantile_extreme(const Operand& x, const Box& box, const double* q, int nq, bool absolute,
                      int64_t m_lo, int64_t m_hi, double* out) {
    const int64_t r = detail::box_size(box);
    const int64_t splits = detail::splits_for(box);
    const int64_t ntasks = box.k * splits;
    std::vector<Keeper> lows(static_cast<size_t>(ntasks)), highs(static_cast<size_t>(ntasks));
    std::vector<float> nfs(static_cast<size_t>(ntasks), 0.0f);
    parallel_for(ntasks, r / splits, [&](int64_t t) {
        const int64_t k = t / splits;
        int64_t r0, r1;
        detail::split_range(box.shape[0], splits, t % splits, r0, r1);
        Keeper& lo = lows[static_cast<size_t>(t)];
        Keeper& hi = highs[static_cast<size_t>(t)];
        lo.init(m_lo, true);
        hi.init(m_hi, false);
        float nf = 0.0f;
        const int64_t base[1] = {x.koff[k]};
        const int64_t* const strides[1] = {x.rstrides};
        detail::walk<1>(base, strides, box, r0, r1, [&](const int64_t* off, int64_t n, const int64_t* s) {
            keep_run<D>(static_cast<const typename Elem<D>::T*>(x.data) + off[0], n, s[0], absolute,
                        lo, hi, nf);
        });
        nfs[static_cast<size_t>(t)] = nf;
    });
    for (float f : nfs)
        if (f != 0.0f) return false;
    std::vector<float> lv, hv;
    for (int64_t k = 0; k < box.k; ++k) {
        // The union of every split's candidates holds the m smallest (largest) values.
        lv.clear();
        hv.clear();
        for (int64_t j = 0; j < splits; ++j) {
            const auto& l = lows[static_cast<size_t>(k * splits + j)].buf;
            const auto& h = highs[static_cast<size_t>(k * splits + j)].buf;
            lv.insert(lv.end(), l.begin(), l.end());
            hv.insert(hv.end(), h.begin(), h.end());
        }
        std::sort(lv.begin(), lv.end());                         // lv[i] = v[i], i < m_lo
        std::sort(hv.begin(), hv.end(), std::greater<float>());  // hv[i] = v[r - 1 - i]
        auto at = [&](int64_t i) -> double {
            return i < m_lo ? lv[static_cast<size_t>(i)] : hv[static_cast<size_t>(r - 1 - i)];
        };
        for (int qi = 0; qi < nq; ++qi) {
            const double h = static_cast<double>(r - 1) * q[qi];
            const int64_t i = static_cast<int64_t>(std::floor(h));
            const int64_t j = std::min<int64_t>(i + 1, r - 1);
            const double vi = at(i);
            const double vj = j == i ? vi : at(j);
            out[qi * box.k + k] = vi + (h - static_cast<double>(i)) * (vj - vi);
        }
    }
    return true;
}

template <DType D>
bool quantile_t(const Operand& x, const Box& box, const double* q, int nq, bool absolute,
                double* out) {
    const int64_t r = detail::box_size(box);
    // Extreme path if every rank pair (i, j) lies within `lim` of one end.
    const int64_t lim = std::min<int64_t>(r / 16, 4096);
    int64_t m_lo = 0, m_hi = 0;
    bool extreme = lim >= 1;
    for (int qi = 0; qi < nq && extreme; ++qi) {
        const double h = static_cast<double>(r - 1) * q[qi];
        const int64_t i = static_cast<int64_t>(std::floor(h));
        const int64_t j = std::min<int64_t>(i + 1, r - 1);
        if (j < lim)
            m_lo = std::max(m_lo, j + 1);
        else if (i >= r - lim)
            m_hi = std::max(m_hi, r - i);
        else
            extreme = false;
    }
    if (extreme) return quantile_extreme<D>(x, box, q, nq, absolute, m_lo, m_hi, out);
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
// Slot of a finite value: 0 below lo, bins + 1 above hi, else 1 + min(floor((v - lo) *
// scale), bins - 1). Inside [lo, hi] the product is >= 0, so truncation is floor (no libm
// call). Out-of-range values are clamped before the product so it stays small. A NaN or
// Inf only sets `bad` (the result is then discarded and the tensor reported); its slot
// is some in-range index.
constexpr int64_t kHistLanes = 4;
constexpr int64_t kHistLaneMaxWidth = int64_t{1} << 16;  // larger histograms count in one array

struct HistParams {
    double l, h, scale;
    int64_t bins;
    bool absolute;
};

inline int64_t hist_slot(double v, const HistParams& hp) {
    const double c = v < hp.l ? hp.l : (v > hp.h ? hp.h : v);
    int64_t b = static_cast<int64_t>((c - hp.l) * hp.scale);
    b = b < hp.bins - 1 ? b : hp.bins - 1;
    return v < hp.l ? 0 : (v > hp.h ? hp.bins + 1 : b + 1);
}

template <DType D>
void hist_scalar(const typename Elem<D>::T* p, int64_t n, int64_t s, const HistParams& hp,
                 int64_t* cnt, bool& bad) {
    bool nf = false;
    for (int64_t i = 0; i < n; ++i) {
        const float f = Elem<D>::load(p + i * s);
        nf |= !(std::fabs(f) < kInf);
        const double v = hp.absolute ? std::fabs(static_cast<double>(f)) : static_cast<double>(f);
        ++cnt[hist_slot(v == v ? v : hp.l, hp)];
    }
    bad = bad || nf;
}

#if OVQ_X86
// 4 x 64-bit lane masks -> 4 x 32-bit lane masks.
__attribute__((target("avx2,fma,f16c"))) inline __m128i narrow_mask(__m256d m) {
    const __m256i idx = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    return _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(_mm256_castpd_si256(m), idx));
}

// Slots of 8 values per step computed in vector registers (the same float64 arithmetic
// as hist_slot), then counted with scalar increments into `lanes` interleaved count
// arrays `stride` apart (value j of a step goes to array j % lanes): neighbouring values
// often share a bin, and one array would chain each increment on the previous store.
// Returns the count consumed.
template <DType D>
__attribute__((target("avx2,fma,f16c"))) int64_t hist_avx2(const typename Elem<D>::T* p, int64_t n,
                                                          const HistParams& hp, int64_t* cnt,
                                                          int64_t lanes, int64_t stride, bool& bad) {
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 inf = _mm256_set1_ps(kInf);
    const __m256 sgn = hp.absolute ? absm : _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    const __m256d l = _mm256_set1_pd(hp.l), h = _mm256_set1_pd(hp.h), sc = _mm256_set1_pd(hp.scale);
    const __m128i last = _mm_set1_epi32(static_cast<int32_t>(hp.bins - 1));
    const __m128i one = _mm_set1_epi32(1), over = _mm_set1_epi32(static_cast<int32_t>(hp.bins + 1));
    __m256 nf = _mm256_setzero_ps();
    alignas(32) int32_t slot[8];
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_and_ps(load8<D>(p + i), sgn);
        nf = _mm256_or_ps(nf, _mm256_cmp_ps(_mm256_and_ps(x, absm), inf, _CMP_NLT_UQ));
        for (int half = 0; half < 2; ++half) {
            const __m256d v = _mm256_cvtps_pd(half ? _mm256_extractf128_ps(x, 1) : _mm256_castps256_ps128(x));
            // maxpd/minpd return the second operand for NaN, so a NaN lands in range.
            const __m256d c = _mm256_min_pd(_mm256_max_pd(v, l), h);
            __m128i b = _mm256_cvttpd_epi32(_mm256_mul_pd(_mm256_sub_pd(c, l), sc));
            b = _mm_add_epi32(_mm_min_epi32(b, last), one);
            const __m128i below = narrow_mask(_mm256_cmp_pd(v, l, _CMP_LT_OQ));
            const __m128i above = narrow_mask(_mm256_cmp_pd(v, h, _CMP_GT_OQ));
            b = _mm_andnot_si128(below, b);                                     // below: 0
            b = _mm_or_si128(_mm_andnot_si128(above, b), _mm_and_si128(above, over));
            _mm_store_si128(reinterpret_cast<__m128i*>(slot + 4 * half), b);
        }
        for (int j = 0; j < 8; ++j) ++cnt[(j % lanes) * stride + slot[j]];
    }
    if (_mm256_movemask_ps(nf)) bad = true;
    return i;
}
#endif

template <DType D>
bool histogram_t(const Operand& x, const Box& box, const double* lo, const double* hi,
                 int64_t bins, bool absolute, int64_t* out) {
    const int64_t width = bins + 2;
    const int64_t splits = detail::splits_for(box);
    const int64_t ntasks = box.k * splits;
    std::vector<int64_t> part(static_cast<size_t>(ntasks * width), 0);
    std::vector<char> bads(static_cast<size_t>(ntasks), 0);
    parallel_for(ntasks, detail::box_size(box) / splits, [&](int64_t t) {
        const int64_t k = t / splits;
        int64_t r0, r1;
        detail::split_range(box.shape[0], splits, t % splits, r0, r1);
        const HistParams hp{lo[k], hi[k], static_cast<double>(bins) / (hi[k] - lo[k]), bins, absolute};
        int64_t* cnt = part.data() + t * width;
        bool bad = false;
        const int64_t base[1] = {x.koff[k]};
        const int64_t* const strides[1] = {x.rstrides};
        // kHistLanes interleaved count arrays for the vector path (folded into cnt below)
        const int64_t lanes = width <= kHistLaneMaxWidth ? kHistLanes : 1;
        std::vector<int64_t> lane_counts(lanes > 1 ? static_cast<size_t>(lanes * width) : 0, 0);
        int64_t* vcnt = lanes > 1 ? lane_counts.data() : cnt;
        detail::walk<1>(base, strides, box, r0, r1, [&](const int64_t* off, int64_t n, const int64_t* s) {
            const auto* p = static_cast<const typename Elem<D>::T*>(x.data) + off[0];
            int64_t i = 0;
#if OVQ_X86
            if (s[0] == 1 && simd_enabled() && bins < (int64_t{1} << 30))
                i = hist_avx2<D>(p, n, hp, vcnt, lanes, width, bad);
#endif
            hist_scalar<D>(p + i * s[0], n - i, s[0], hp, cnt, bad);
        });
        if (lanes > 1)
            for (int64_t l = 0; l < lanes; ++l)
                for (int64_t b = 0; b < width; ++b) cnt[b] += lane_counts[static_cast<size_t>(l * width + b)];
        bads[static_cast<size_t>(t)] = bad;
    });
    for (int64_t k = 0; k < box.k; ++k) {
        for (int64_t b = 0; b < width; ++b) {
            int64_t c = 0;
            for (int64_t j = 0; j < splits; ++j) c += part[static_cast<size_t>((k * splits + j) * width + b)];
            out[k * width + b] = c;
        }
    }
    for (char b : bads)
        if (b) return false;
    return true;
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
