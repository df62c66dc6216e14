// Pair saturation of u8 x s8 dot products, as x86 INT8 kernels without VNNI compute them:
// `vpmaddubsw` adds the products of input elements (2j, 2j+1) into a saturating int16.
// Semantics: ovq/kernels/reference.py::pair_saturation.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "ovq/kernels.hpp"
#include "ovq/simd.hpp"

namespace ovq {

namespace {

constexpr int32_t kS16Max = 32767;
constexpr int32_t kS16Min = -32768;

// Σ over pairs of (exact - saturated) for one activation row and one weight row, and the
// number of pairs that leave int16. k2 is the number of pairs.
inline int64_t row_generic(const uint8_t* a, const int8_t* w, int64_t k2, int64_t* count) {
    int64_t err = 0, n = 0;
    for (int64_t j = 0; j < k2; ++j) {
        const int32_t s = int32_t(a[2 * j]) * w[2 * j] + int32_t(a[2 * j + 1]) * w[2 * j + 1];
        const int32_t c = std::min(std::max(s, kS16Min), kS16Max);
        err += s - c;
        n += s != c;
    }
    *count += n;
    return err;
}

#if OVQ_X86
__attribute__((target("avx2,fma,f16c"))) int64_t row_avx2(const uint8_t* a, const int8_t* w, int64_t k2,
                                                          int64_t* count) {
    // 8 pairs (16 bytes) per step: widen to int16, vpmaddwd gives the exact pair sums in int32.
    const __m256i hi = _mm256_set1_epi32(kS16Max), lo = _mm256_set1_epi32(kS16Min);
    __m256i err = _mm256_setzero_si256(), n = _mm256_setzero_si256();
    int64_t j = 0;
    for (; j + 8 <= k2; j += 8) {
        const __m256i av = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + 2 * j)));
        const __m256i wv = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2 * j)));
        const __m256i s = _mm256_madd_epi16(av, wv);
        const __m256i c = _mm256_min_epi32(_mm256_max_epi32(s, lo), hi);
        const __m256i d = _mm256_sub_epi32(s, c);
        err = _mm256_add_epi32(err, d);  // |d| < 2^15 per pair: int32 lanes hold 2^16 steps
        n = _mm256_sub_epi32(n, _mm256_cmpeq_epi32(_mm256_cmpeq_epi32(d, _mm256_setzero_si256()),
                                                   _mm256_setzero_si256()));
    }
    alignas(32) int32_t e8[8], n8[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(e8), err);
    _mm256_store_si256(reinterpret_cast<__m256i*>(n8), n);
    int64_t total = 0, cnt = 0;
    for (int i = 0; i < 8; ++i) {
        total += e8[i];
        cnt += n8[i];
    }
    *count += cnt;
    return total + row_generic(a + 2 * j, w + 2 * j, k2 - j, count);
}
#endif

// Whether some pair of weight row `w` can leave int16 for activation codes within the
// per-column bounds [amin, amax] (0 <= amin <= amax <= 255): the largest and smallest
// pair sums the bounds allow. Every product fits int16 (|255 x -128| < 2^15).
inline bool can_saturate_generic(const int8_t* w, const int16_t* amin, const int16_t* amax, int64_t k2) {
    for (int64_t j = 0; j < k2; ++j) {
        int32_t top = 0, bottom = 0;
        for (int64_t i = 2 * j; i < 2 * j + 2; ++i) {
            const int32_t p_lo = int32_t(amin[i]) * w[i], p_hi = int32_t(amax[i]) * w[i];
            top += std::max(p_lo, p_hi);
            bottom += std::min(p_lo, p_hi);
        }
        if (top > kS16Max || bottom < kS16Min) return true;
    }
    return false;
}

#if OVQ_X86
__attribute__((target("avx2,fma,f16c"))) bool can_saturate_avx2(const int8_t* w, const int16_t* amin,
                                                                const int16_t* amax, int64_t k2) {
    // 8 pairs per step: the products in int16, their extremes, vpmaddwd adds pairs exactly.
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i hi = _mm256_set1_epi32(kS16Max), lo = _mm256_set1_epi32(kS16Min);
    __m256i out = _mm256_setzero_si256();
    int64_t j = 0;
    for (; j + 8 <= k2; j += 8) {
        const __m256i wv = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2 * j)));
        const __m256i p_lo = _mm256_mullo_epi16(wv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(amin + 2 * j)));
        const __m256i p_hi = _mm256_mullo_epi16(wv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(amax + 2 * j)));
        const __m256i top = _mm256_madd_epi16(_mm256_max_epi16(p_lo, p_hi), ones);
        const __m256i bottom = _mm256_madd_epi16(_mm256_min_epi16(p_lo, p_hi), ones);
        out = _mm256_or_si256(out, _mm256_or_si256(_mm256_cmpgt_epi32(top, hi), _mm256_cmpgt_epi32(lo, bottom)));
    }
    return !_mm256_testz_si256(out, out) || can_saturate_generic(w + 2 * j, amin + 2 * j, amax + 2 * j, k2 - j);
}
#endif

// Per-column minimum and maximum of the rows x k codes `a`.
void column_bounds_generic(const uint8_t* a, int64_t rows, int64_t k, uint8_t* __restrict mn,
                           uint8_t* __restrict mx) {
    for (int64_t p = 0; p < rows; ++p) {
        const uint8_t* __restrict ap = a + p * k;
        for (int64_t i = 0; i < k; ++i) {
            mn[i] = std::min(mn[i], ap[i]);
            mx[i] = std::max(mx[i], ap[i]);
        }
    }
}

#if OVQ_X86
__attribute__((target("avx2,fma,f16c"))) void column_bounds_avx2(const uint8_t* a, int64_t rows, int64_t k,
                                                                 uint8_t* mn, uint8_t* mx) {
    int64_t i = 0;
    for (; i + 32 <= k; i += 32) {
        __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(mn + i));
        __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(mx + i));
        for (int64_t p = 0; p < rows; ++p) {
            const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + p * k + i));
            lo = _mm256_min_epu8(lo, v);
            hi = _mm256_max_epu8(hi, v);
        }
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(mn + i), lo);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(mx + i), hi);
    }
    for (int64_t p = 0; p < rows; ++p) {
        for (int64_t c = i; c < k; ++c) {
            mn[c] = std::min(mn[c], a[p * k + c]);
            mx[c] = std::max(mx[c], a[p * k + c]);
        }
    }
}
#endif

}  // namespace

void pair_saturation(const uint8_t* a, int64_t rows, const int8_t* w, int64_t outs, int64_t k,
                     double* err_sq, int64_t* saturated) {
    const int64_t k2 = k / 2;
    // Lanes accumulate up to 2^15 per pair step: chunk rows longer than 2^16 pairs per lane.
    const bool simd = simd_enabled() && k2 <= (int64_t(1) << 18);
    // Per-column code bounds: weight rows no pair of which can leave int16 skip the rows.
    std::vector<uint8_t> min8(size_t(k), 255), max8(size_t(k), 0);
#if OVQ_X86
    if (simd)
        column_bounds_avx2(a, rows, k, min8.data(), max8.data());
    else
        column_bounds_generic(a, rows, k, min8.data(), max8.data());
#else
    column_bounds_generic(a, rows, k, min8.data(), max8.data());
#endif
    const std::vector<int16_t> amin(min8.begin(), min8.end()), amax(max8.begin(), max8.end());
    parallel_for(outs, rows * k, [&](int64_t o) {
        const int8_t* wo = w + o * k;
        double sq = 0.0;
        int64_t cnt = 0;
#if OVQ_X86
        const bool possible = simd ? can_saturate_avx2(wo, amin.data(), amax.data(), k2)
                                   : can_saturate_generic(wo, amin.data(), amax.data(), k2);
#else
        const bool possible = can_saturate_generic(wo, amin.data(), amax.data(), k2);
#endif
        if (rows == 0 || !possible) {
            err_sq[o] = 0.0;
            saturated[o] = 0;
            return;
        }
        for (int64_t p = 0; p < rows; ++p) {
            const uint8_t* ap = a + p * k;
#if OVQ_X86
            const int64_t e = simd ? row_avx2(ap, wo, k2, &cnt) : row_generic(ap, wo, k2, &cnt);
#else
            const int64_t e = row_generic(ap, wo, k2, &cnt);
#endif
            sq += double(e) * double(e);
        }
        err_sq[o] = sq;
        saturated[o] = cnt;
    });
}

}  // namespace ovq
