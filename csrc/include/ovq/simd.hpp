#pragma once
// x86 SIMD helpers shared by the kernels. Functions carry target attributes, so the
// translation units stay portable (no -mavx2); callers dispatch at run time.
#include "ovq/detail.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
#define OVQ_X86 1
#endif

#if OVQ_X86
namespace ovq::detail {

// Load 8 elements of type D as floats: f32 as is, f16 via F16C, bf16 by widening to the
// top 16 bits of an f32.
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

}  // namespace ovq::detail
#endif
