// Weight-only compression: group-wise scales and zero points, integer levels, nibble
// packing and the per-row INT8_ASYM error. Semantics: ovq/kernels/reference.py
// (group_params, compress_groups, int8_asym_error); float32 arithmetic with a true
// division and round half to even, as NNCF 3.4's data-free integer quantization.
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "ovq/detail.hpp"
#include "ovq/group_params.hpp"
#include "ovq/simd.hpp"

namespace ovq {
namespace {

using detail::Elem;
#if OVQ_X86
using detail::load8;
#endif

using Params = GroupParams;

#if OVQ_X86
// The vector part of span_minmax: returns the count consumed (a multiple of 8).
template <DType D>
__attribute__((target("avx2,fma,f16c"))) int64_t minmax_avx2(const typename Elem<D>::T* p, int64_t n, float& mn,
                                                            float& mx, float& nf) {
    __m256 vmn = _mm256_set1_ps(INFINITY), vmx = _mm256_set1_ps(-INFINITY);
    __m256 vnf = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const __m256 v = load8<D>(p + j);
        vmn = _mm256_min_ps(vmn, v);
        vmx = _mm256_max_ps(vmx, v);
        vnf = _mm256_add_ps(vnf, _mm256_sub_ps(v, v));  // stays 0 unless a value is NaN/Inf
    }
    // horizontal min/max in registers (the order cannot change a min/max; the sign of a
    // zero extreme does not change the scale)
    __m128 lo = _mm_min_ps(_mm256_castps256_ps128(vmn), _mm256_extractf128_ps(vmn, 1));
    __m128 hi = _mm_max_ps(_mm256_castps256_ps128(vmx), _mm256_extractf128_ps(vmx, 1));
    lo = _mm_min_ps(lo, _mm_movehl_ps(lo, lo));
    hi = _mm_max_ps(hi, _mm_movehl_ps(hi, hi));
    lo = _mm_min_ss(lo, _mm_shuffle_ps(lo, lo, 1));
    hi = _mm_max_ss(hi, _mm_shuffle_ps(hi, hi, 1));
    const float l = _mm_cvtss_f32(lo), h = _mm_cvtss_f32(hi);
    mn = l < mn ? l : mn;
    mx = h > mx ? h : mx;
    if (_mm256_movemask_ps(_mm256_cmp_ps(vnf, _mm256_setzero_ps(), _CMP_NEQ_UQ))) nf = NAN;
    return j;
}

// Rounding decides only near half-integers: w * (1/s) is within a few ulps of w / s, and
// |w / s| <= 2^bits, so a lane whose fast value is farther than kNearHalf from a half-
// integer rounds the same either way. Vectors with a lane closer than that take the
// true division, so the levels equal the division's exactly.
constexpr float kNearHalf = 1.0f / 256.0f;

template <DType D>
__attribute__((target("avx2,fma,f16c"))) inline __m256 levels8(const typename Elem<D>::T* p, __m256 vs, __m256 vinv,
                                                               __m256 vz, __m256 vlo, __m256 vhi, __m256& v) {
    constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 edge = _mm256_set1_ps(0.5f - kNearHalf);
    v = load8<D>(p);
    __m256 t = _mm256_add_ps(_mm256_mul_ps(v, vinv), vz);
    __m256 r = _mm256_round_ps(t, kRound);
    if (_mm256_movemask_ps(_mm256_cmp_ps(_mm256_and_ps(_mm256_sub_ps(t, r), absm), edge, _CMP_GT_OQ))) {
        t = _mm256_add_ps(_mm256_div_ps(v, vs), vz);
        r = _mm256_round_ps(t, kRound);
    }
    return _mm256_min_ps(_mm256_max_ps(r, vlo), vhi);
}

// The vector part of span_levels.
template <DType D>
__attribute__((target("avx2,fma,f16c"))) int64_t levels_avx2(const typename Elem<D>::T* p, int64_t n, float s,
                                                             float zp, float lo, float hi, int32_t* out) {
    const __m256 vs = _mm256_set1_ps(s), vinv = _mm256_set1_ps(1.0f / s), vz = _mm256_set1_ps(zp);
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    int64_t j = 0;
    __m256 v;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j),
                            _mm256_cvttps_epi32(levels8<D>(p + j, vs, vinv, vz, vlo, vhi, v)));
    return j;
}

// Levels of n values (n a multiple of 8) packed two per byte, low nibble first, into out.
template <DType D>
__attribute__((target("avx2,fma,f16c"))) void levels_packed_avx2(const typename Elem<D>::T* p, int64_t n, float s,
                                                                 float zp, float lo, float hi, uint8_t* out) {
    const __m256 vs = _mm256_set1_ps(s), vinv = _mm256_set1_ps(1.0f / s), vz = _mm256_set1_ps(zp);
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    const __m256i nib = _mm256_set1_epi32(0x0F);
    // byte 0 of each 64-bit lane (a_even | a_odd << 4) to bytes 0, 1 of each 128-bit half
    const __m256i pick = _mm256_setr_epi8(0, 8, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 8, -1,
                                          -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    __m256 v;
    for (int64_t j = 0; j < n; j += 8) {
        const __m256i q = _mm256_and_si256(_mm256_cvttps_epi32(levels8<D>(p + j, vs, vinv, vz, vlo, vhi, v)), nib);
        const __m256i x = _mm256_shuffle_epi8(_mm256_or_si256(q, _mm256_srli_epi64(q, 28)), pick);
        const uint32_t word = static_cast<uint32_t>(_mm256_extract_epi16(x, 0)) |
                              (static_cast<uint32_t>(_mm256_extract_epi16(x, 8)) << 16);
        std::memcpy(out + j / 2, &word, 4);
    }
}

// Levels of the first multiple-of-8 values as bytes (the low byte of each level: int8 as
// two's complement) into out; returns the count done.
template <DType D>
__attribute__((target("avx2,fma,f16c"))) int64_t levels_bytes_avx2(const typename Elem<D>::T* p, int64_t n, float s,
                                                                   float zp, float lo, float hi, uint8_t* out) {
    const __m256 vs = _mm256_set1_ps(s), vinv = _mm256_set1_ps(1.0f / s), vz = _mm256_set1_ps(zp);
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    const __m256i byte = _mm256_set1_epi32(0xff);
    __m256 v;
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        // masking first makes the unsigned saturating packs keep the low bytes exactly
        const __m256i q = _mm256_and_si256(_mm256_cvttps_epi32(levels8<D>(p + j, vs, vinv, vz, vlo, vhi, v)), byte);
        const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(out + j), _mm_packus_epi16(w, w));
    }
    return j;
}

// The vector part of the INT8_ASYM error: adds the squared errors of the first
// multiple-of-8 values to acc (float64 lanes); returns the count consumed.
template <DType D>
__attribute__((target("avx2,fma,f16c"))) int64_t error_avx2(const typename Elem<D>::T* p, int64_t n, float s,
                                                            float zp, float lo, float hi, double& acc) {
    const __m256 vs = _mm256_set1_ps(s), vinv = _mm256_set1_ps(1.0f / s), vz = _mm256_set1_ps(zp);
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    int64_t j = 0;
    __m256 v;
    for (; j + 8 <= n; j += 8) {
        const __m256 q = levels8<D>(p + j, vs, vinv, vz, vlo, vhi, v);
        const __m256 d = _mm256_sub_ps(_mm256_mul_ps(_mm256_sub_ps(q, vz), vs), v);
        const __m256d d0 = _mm256_cvtps_pd(_mm256_castps256_ps128(d));
        const __m256d d1 = _mm256_cvtps_pd(_mm256_extractf128_ps(d, 1));
        a0 = _mm256_fmadd_pd(d0, d0, a0);
        a1 = _mm256_fmadd_pd(d1, d1, a1);
    }
    alignas(32) double t[4];
    _mm256_store_pd(t, _mm256_add_pd(a0, a1));
    acc += (t[0] + t[1]) + (t[2] + t[3]);
    return j;
}
#endif

// min and max of n values; false if one is NaN or +-Inf.
template <DType D>
bool span_minmax(const typename Elem<D>::T* p, int64_t n, float& mn_out, float& mx_out) {
    float mn = INFINITY, mx = -INFINITY, nf = 0.0f;
    int64_t i = 0;
#if OVQ_X86
    if (simd_enabled()) i = minmax_avx2<D>(p, n, mn, mx, nf);
#endif
    for (; i < n; ++i) {
        const float v = Elem<D>::load(p + i);
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
        nf += v - v;
    }
    mn_out = mn;
    mx_out = mx;
    return nf == 0.0f;
}

// Levels of n values as int32 into out (clip(rint(v / s + zp), lo, hi)).
template <DType D>
void span_levels(const typename Elem<D>::T* p, int64_t n, const Params& g, int32_t* out) {
    int64_t i = 0;
#if OVQ_X86
    if (simd_enabled()) i = levels_avx2<D>(p, n, g.s, g.zp, g.lo, g.hi, out);
#endif
    for (; i < n; ++i) {
        float t = std::nearbyint(Elem<D>::load(p + i) / g.s + g.zp);
        t = t < g.lo ? g.lo : (t > g.hi ? g.hi : t);
        out[i] = static_cast<int32_t>(t);
    }
}

template <DType D>
bool compress_groups_t(const void* data, int64_t rows, int64_t cols, int bits, bool sym, int64_t group,
                       bool packed, uint8_t* q, float* scale, uint8_t* zp) {
    const int64_t ng = cols / group;
    std::vector<char> bad(static_cast<size_t>(rows), 0);
    parallel_for(rows, cols, [&](int64_t r) {
        const auto* row = static_cast<const typename Elem<D>::T*>(data) + r * cols;
#if OVQ_X86
        if (packed && group % 8 == 0 && simd_enabled()) {  // levels packed straight into the output
            for (int64_t gi = 0; gi < ng; ++gi) {
                const auto* p = row + gi * group;
                float mn, mx;
                if (!span_minmax<D>(p, group, mn, mx)) {
                    bad[static_cast<size_t>(r)] = 1;
                    mn = mx = 0.0f;
                }
                const Params g = group_params(mn, mx, bits, sym);
                scale[r * ng + gi] = g.s;
                if (!sym) zp[r * ng + gi] = static_cast<uint8_t>(g.zp);
                levels_packed_avx2<D>(p, group, g.s, g.zp, g.lo, g.hi, q + r * (cols / 2) + gi * group / 2);
            }
            return;
        }
#endif
        if (!packed) {  // one byte per level, written as computed
            uint8_t* o = q + r * cols;
            for (int64_t gi = 0; gi < ng; ++gi) {
                const auto* p = row + gi * group;
                float mn, mx;
                if (!span_minmax<D>(p, group, mn, mx)) {
                    bad[static_cast<size_t>(r)] = 1;
                    mn = mx = 0.0f;
                }
                const Params g = group_params(mn, mx, bits, sym);
                scale[r * ng + gi] = g.s;
                if (!sym) zp[r * ng + gi] = static_cast<uint8_t>(g.zp);
                uint8_t* og = o + gi * group;
                int64_t i = 0;
#if OVQ_X86
                if (simd_enabled()) i = levels_bytes_avx2<D>(p, group, g.s, g.zp, g.lo, g.hi, og);
#endif
                for (; i < group; ++i) {
                    float t = std::nearbyint(Elem<D>::load(p + i) / g.s + g.zp);
                    t = t < g.lo ? g.lo : (t > g.hi ? g.hi : t);
                    og[i] = static_cast<uint8_t>(static_cast<int32_t>(t));  // low byte: int8 as two's complement
                }
            }
            return;
        }
        std::vector<int32_t> lv(static_cast<size_t>(cols));
        for (int64_t gi = 0; gi < ng; ++gi) {
            const auto* p = row + gi * group;
            float mn, mx;
            if (!span_minmax<D>(p, group, mn, mx)) {
                bad[static_cast<size_t>(r)] = 1;
                mn = mx = 0.0f;
            }
            const Params g = group_params(mn, mx, bits, sym);
            scale[r * ng + gi] = g.s;
            if (!sym) zp[r * ng + gi] = static_cast<uint8_t>(g.zp);
            span_levels<D>(p, group, g, lv.data() + gi * group);
        }
        uint8_t* o = q + r * (cols / 2);  // packed, groups not a multiple of 8 (or no AVX2)
        for (int64_t i = 0; i < cols / 2; ++i)
            o[i] = static_cast<uint8_t>((lv[2 * i] & 0x0F) | ((lv[2 * i + 1] & 0x0F) << 4));
    });
    for (char b : bad)
        if (b) return false;
    return true;
}

template <DType D>
bool int8_asym_error_t(const void* data, int64_t rows, int64_t cols, double* out) {
    std::vector<char> bad(static_cast<size_t>(rows), 0);
    parallel_for(rows, cols, [&](int64_t r) {
        const auto* row = static_cast<const typename Elem<D>::T*>(data) + r * cols;
        float mn, mx;
        if (!span_minmax<D>(row, cols, mn, mx)) {
            bad[static_cast<size_t>(r)] = 1;
            out[r] = 0.0;
            return;
        }
        const Params g = group_params(mn, mx, 8, false);
        double acc = 0.0;
        int64_t i = 0;
#if OVQ_X86
        if (simd_enabled()) i = error_avx2<D>(row, cols, g.s, g.zp, g.lo, g.hi, acc);
#endif
        for (; i < cols; ++i) {
            const float w = Elem<D>::load(row + i);
            float t = std::nearbyint(w / g.s + g.zp);
            t = t < g.lo ? g.lo : (t > g.hi ? g.hi : t);
            const float d = (t - g.zp) * g.s - w;
            acc += static_cast<double>(d) * static_cast<double>(d);
        }
        out[r] = acc / static_cast<double>(cols);
    });
    for (char b : bad)
        if (b) return false;
    return true;
}

}  // namespace

bool compress_groups(DType dt, const void* data, int64_t rows, int64_t cols, int bits, bool sym, int64_t group,
                     bool packed, uint8_t* q, float* scale, uint8_t* zp) {
    switch (dt) {
        case DType::F32: return compress_groups_t<DType::F32>(data, rows, cols, bits, sym, group, packed, q, scale, zp);
        case DType::F16: return compress_groups_t<DType::F16>(data, rows, cols, bits, sym, group, packed, q, scale, zp);
        default: return compress_groups_t<DType::BF16>(data, rows, cols, bits, sym, group, packed, q, scale, zp);
    }
}

bool int8_asym_error(DType dt, const void* data, int64_t rows, int64_t cols, double* out) {
    switch (dt) {
        case DType::F32: return int8_asym_error_t<DType::F32>(data, rows, cols, out);
        case DType::F16: return int8_asym_error_t<DType::F16>(data, rows, cols, out);
        default: return int8_asym_error_t<DType::BF16>(data, rows, cols, out);
    }
}

}  // namespace ovq
