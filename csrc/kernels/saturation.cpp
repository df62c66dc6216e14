// Pair saturation of u8 x s8 dot products, as x86 INT8 kernels without VNNI compute them:
// `vpmaddubsw` adds the products of input elements (2j, 2j+1) into a saturating int16.
// Semantics: ovq/kernels/reference.py::pair_saturation.
#include <algorithm>
#include <cstdint>

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

}  // namespace

void pair_saturation(const uint8_t* a, int64_t rows, const int8_t* w, int64_t outs, int64_t k,
                     double* err_sq, int64_t* saturated) {
    const int64_t k2 = k / 2;
    // Lanes accumulate up to 2^15 per pair step: chunk rows longer than 2^16 pairs per lane.
    const bool simd = simd_enabled() && k2 <= (int64_t(1) << 18);
    parallel_for(outs, rows * k, [&](int64_t o) {
        const int8_t* wo = w + o * k;
        double sq = 0.0;
        int64_t cnt = 0;
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
