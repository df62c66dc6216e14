// FakeQuantize emulation (OpenVINO CPU plugin arithmetic), integer quantization and
// dequantization. Semantics: ovq/kernels/reference.py (fake_quantize, quantize,
// dequantize). Bit-exactness relies on -ffp-contract=off (CMakeLists.txt): every fused
// multiply-add below is written out explicitly.
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "ovq/detail.hpp"
#include "ovq/simd.hpp"

namespace ovq {
namespace {

using detail::Elem;
#if OVQ_X86
using detail::load8;
#endif

// x86 maxps/minps semantics: the first operand if the comparison holds, else the second.
inline float xmax(float a, float b) { return a > b ? a : b; }
inline float xmin(float a, float b) { return a < b ? a : b; }

struct K6 {
    float cl, ch, isc, ish, osc, osh;
};

inline K6 consts_at(const FQConsts& c, int64_t k) {
    const int64_t i = c.per_k ? k : 0;
    return {c.cl[i], c.ch[i], c.isc[i], c.ish[i], c.osc[i], c.osh[i]};
}

inline float fq_snippets(float x, const K6& c) {
    const float v = xmin(xmax(x, c.cl), c.ch);
    const float prod = v * c.isc;
    const float t = std::nearbyint(prod - c.ish);
    return std::fma(t, c.osc, c.osh);
}

inline float fq_node(float x, const K6& c) {
    const float v = xmax(xmin(x, c.ch), c.cl);
    const float t = std::nearbyint(std::fma(v, c.isc, c.ish));
    return std::fma(t, c.osc, c.osh);
}

template <DType D>
void fq_scalar(const typename Elem<D>::T* p, int64_t sx, float* o, int64_t so, int64_t n, const K6& c,
               int flavor) {
    if (flavor == 1) {
        for (int64_t i = 0; i < n; ++i) o[i * so] = fq_node(Elem<D>::load(p + i * sx), c);
    } else {
        for (int64_t i = 0; i < n; ++i) o[i * so] = fq_snippets(Elem<D>::load(p + i * sx), c);
    }
}

#if OVQ_X86
template <DType D>
__attribute__((target("avx2,fma,f16c"))) void fq_avx2(const typename Elem<D>::T* p, float* o, int64_t n,
                                                     const K6& c, int flavor) {
    const __m256 cl = _mm256_set1_ps(c.cl), ch = _mm256_set1_ps(c.ch);
    const __m256 isc = _mm256_set1_ps(c.isc), ish = _mm256_set1_ps(c.ish);
    const __m256 osc = _mm256_set1_ps(c.osc), osh = _mm256_set1_ps(c.osh);
    constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    int64_t i = 0;
    if (flavor == 1) {
        for (; i + 8 <= n; i += 8) {
            const __m256 v = _mm256_max_ps(_mm256_min_ps(load8<D>(p + i), ch), cl);
            const __m256 t = _mm256_round_ps(_mm256_fmadd_ps(v, isc, ish), kRound);
            _mm256_storeu_ps(o + i, _mm256_fmadd_ps(t, osc, osh));
        }
    } else {
        for (; i + 8 <= n; i += 8) {
            const __m256 v = _mm256_min_ps(_mm256_max_ps(load8<D>(p + i), cl), ch);
            const __m256 t = _mm256_round_ps(_mm256_sub_ps(_mm256_mul_ps(v, isc), ish), kRound);
            _mm256_storeu_ps(o + i, _mm256_fmadd_ps(t, osc, osh));
        }
    }
    fq_scalar<D>(p + i, 1, o + i, 1, n - i, c, flavor);
}
#endif

template <DType D>
void fake_quantize_t(const Operand& x, const Operand& out, const Box& box, const FQConsts& c,
                     int flavor) {
    const int64_t splits = detail::splits_for(box);
    parallel_for(box.k * splits, detail::box_size(box) / splits, [&](int64_t t) {
        const int64_t k = t / splits;
        int64_t r0, r1;
        detail::split_range(box.shape[0], splits, t % splits, r0, r1);
        const K6 kc = consts_at(c, k);
        const int64_t base[2] = {x.koff[k], out.koff[k]};
        const int64_t* const strides[2] = {x.rstrides, out.rstrides};
        detail::walk<2>(base, strides, box, r0, r1, [&](const int64_t* off, int64_t n, const int64_t* s) {
            const auto* p = static_cast<const typename Elem<D>::T*>(x.data) + off[0];
            float* o = static_cast<float*>(const_cast<void*>(out.data)) + off[1];
#if OVQ_X86
            if (s[0] == 1 && s[1] == 1 && simd_enabled()) return fq_avx2<D>(p, o, n, kc, flavor);
#endif
            fq_scalar<D>(p, s[0], o, s[1], n, kc, flavor);
        });
    });
}

template <class I>
void store_int(void* base, int64_t off, int64_t i, int64_t s, float v) {
    static_cast<I*>(base)[off + i * s] = static_cast<I>(static_cast<int32_t>(v));
}

#if OVQ_X86
// Store 8 int32 lanes as I with C++'s wrap-around narrowing (the low bits, as the scalar
// path's cast): masking first makes the unsigned saturating packs exact.
template <class I>
__attribute__((target("avx2,fma,f16c"))) inline void store8i(I* o, __m256i v) {
    if constexpr (sizeof(I) == 4) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), v);
    } else {
        const __m256i m = _mm256_and_si256(v, _mm256_set1_epi32(sizeof(I) == 1 ? 0xff : 0xffff));
        const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(m), _mm256_extracti128_si256(m, 1));
        if constexpr (sizeof(I) == 2)
            _mm_storeu_si128(reinterpret_cast<__m128i*>(o), w);
        else
            _mm_storel_epi64(reinterpret_cast<__m128i*>(o), _mm_packus_epi16(w, w));
    }
}

// Node-flavor levels of a contiguous run stored as I; returns the count consumed (a
// multiple of 8) and ORs a lane mask of non-finite inputs into `bad`.
template <DType D, class I>
__attribute__((target("avx2,fma,f16c"))) int64_t quantize_avx2(const typename Elem<D>::T* p, I* o,
                                                              int64_t n, const K6& c, float top,
                                                              float off, bool& bad) {
    const __m256 cl = _mm256_set1_ps(c.cl), ch = _mm256_set1_ps(c.ch);
    const __m256 isc = _mm256_set1_ps(c.isc), ish = _mm256_set1_ps(c.ish);
    const __m256 zero = _mm256_setzero_ps(), vtop = _mm256_set1_ps(top), voff = _mm256_set1_ps(off);
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 inf = _mm256_set1_ps(std::numeric_limits<float>::infinity());
    constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    __m256 nf = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = load8<D>(p + i);
        nf = _mm256_or_ps(nf, _mm256_cmp_ps(_mm256_and_ps(x, absm), inf, _CMP_NLT_UQ));
        const __m256 v = _mm256_max_ps(_mm256_min_ps(x, ch), cl);
        __m256 t = _mm256_round_ps(_mm256_fmadd_ps(v, isc, ish), kRound);
        t = _mm256_min_ps(_mm256_max_ps(t, zero), vtop);  // maxps(NaN, 0) = 0, as the scalar path
        store8i<I>(o + i, _mm256_cvttps_epi32(_mm256_add_ps(t, voff)));
    }
    if (_mm256_movemask_ps(nf)) bad = true;
    return i;
}
#endif

template <DType D, class I>
bool quantize_t(const Operand& x, const Operand& out, const Box& box, const FQConsts& c, int levels,
                int offset) {
    const int64_t splits = detail::splits_for(box);
    std::vector<char> bads(static_cast<size_t>(box.k * splits), 0);
    const float top = static_cast<float>(levels - 1);
    const float off_f = static_cast<float>(offset);
    parallel_for(box.k * splits, detail::box_size(box) / splits, [&](int64_t t) {
        const int64_t k = t / splits;
        int64_t r0, r1;
        detail::split_range(box.shape[0], splits, t % splits, r0, r1);
        const K6 kc = consts_at(c, k);
        bool bad = false;
        const int64_t base[2] = {x.koff[k], out.koff[k]};
        const int64_t* const strides[2] = {x.rstrides, out.rstrides};
        void* obase = const_cast<void*>(out.data);
        detail::walk<2>(base, strides, box, r0, r1, [&](const int64_t* off, int64_t n, const int64_t* s) {
            const auto* p = static_cast<const typename Elem<D>::T*>(x.data) + off[0];
            int64_t i = 0;
#if OVQ_X86
            if (s[0] == 1 && s[1] == 1 && simd_enabled())
                i = quantize_avx2<D, I>(p, static_cast<I*>(obase) + off[1], n, kc, top, off_f, bad);
#endif
            for (; i < n; ++i) {
                const float raw = Elem<D>::load(p + i * s[0]);
                bad = bad || !(std::fabs(raw) < std::numeric_limits<float>::infinity());
                const float v = xmax(xmin(raw, kc.ch), kc.cl);
                float q = std::nearbyint(std::fma(v, kc.isc, kc.ish));
                q = q < 0.0f ? 0.0f : (q > top ? top : q);
                if (q != q) q = 0.0f;  // only reachable for non-finite input (reported)
                store_int<I>(obase, off[1], i, s[1], q + off_f);
            }
        });
        bads[static_cast<size_t>(t)] = bad;
    });
    for (char b : bads)
        if (b) return false;
    return true;
}

#if OVQ_X86
template <class I>
__attribute__((target("avx2,fma,f16c"))) inline __m256 load8i(const I* p) {
    if constexpr (std::is_same_v<I, int32_t>) {
        return _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    } else if constexpr (sizeof(I) == 2) {
        const __m128i w = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        return _mm256_cvtepi32_ps(std::is_signed_v<I> ? _mm256_cvtepi16_epi32(w) : _mm256_cvtepu16_epi32(w));
    } else {
        const __m128i w = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
        return _mm256_cvtepi32_ps(std::is_signed_v<I> ? _mm256_cvtepi8_epi32(w) : _mm256_cvtepu8_epi32(w));
    }
}

// (f32(q) - zp) * scale, two roundings as in the scalar loop; returns the count done.
template <class I>
__attribute__((target("avx2,fma,f16c"))) int64_t dequantize_avx2(const I* p, float* o, int64_t n, float s,
                                                                float z) {
    const __m256 vs = _mm256_set1_ps(s), vz = _mm256_set1_ps(z);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_sub_ps(load8i<I>(p + i), vz), vs));
    return i;
}
#endif

template <class I>
void dequantize_t(const Operand& q, const Operand& out, const Box& box, const float* scale,
                  const float* zp, bool per_k) {
    const int64_t splits = detail::splits_for(box);
    parallel_for(box.k * splits, detail::box_size(box) / splits, [&](int64_t t) {
        const int64_t k = t / splits;
        int64_t r0, r1;
        detail::split_range(box.shape[0], splits, t % splits, r0, r1);
        const float s_ = scale[per_k ? k : 0], z_ = zp[per_k ? k : 0];
        const int64_t base[2] = {q.koff[k], out.koff[k]};
        const int64_t* const strides[2] = {q.rstrides, out.rstrides};
        detail::walk<2>(base, strides, box, r0, r1, [&](const int64_t* off, int64_t n, const int64_t* s) {
            const I* p = static_cast<const I*>(q.data) + off[0];
            float* o = static_cast<float*>(const_cast<void*>(out.data)) + off[1];
            if (s[0] == 1 && s[1] == 1) {
                int64_t i = 0;
#if OVQ_X86
                if (simd_enabled()) i = dequantize_avx2<I>(p, o, n, s_, z_);
#endif
                for (; i < n; ++i) o[i] = (static_cast<float>(p[i]) - z_) * s_;
            } else {
                for (int64_t i = 0; i < n; ++i) o[i * s[1]] = (static_cast<float>(p[i * s[0]]) - z_) * s_;
            }
        });
    });
}

template <DType D>
bool quantize_d(IType it, const Operand& x, const Operand& out, const Box& box, const FQConsts& c,
                int levels, int offset) {
    switch (it) {
        case IType::I8: return quantize_t<D, int8_t>(x, out, box, c, levels, offset);
        case IType::U8: return quantize_t<D, uint8_t>(x, out, box, c, levels, offset);
        case IType::I16: return quantize_t<D, int16_t>(x, out, box, c, levels, offset);
        case IType::U16: return quantize_t<D, uint16_t>(x, out, box, c, levels, offset);
        default: return quantize_t<D, int32_t>(x, out, box, c, levels, offset);
    }
}

}  // namespace

void fake_quantize(DType dt, const Operand& x, const Operand& out, const Box& box, const FQConsts& c,
                   int flavor) {
    switch (dt) {
        case DType::F32: return fake_quantize_t<DType::F32>(x, out, box, c, flavor);
        case DType::F16: return fake_quantize_t<DType::F16>(x, out, box, c, flavor);
        default: return fake_quantize_t<DType::BF16>(x, out, box, c, flavor);
    }
}

bool quantize(DType dt, const Operand& x, IType it, const Operand& out, const Box& box,
              const FQConsts& c, int levels, int offset) {
    switch (dt) {
        case DType::F32: return quantize_d<DType::F32>(it, x, out, box, c, levels, offset);
        case DType::F16: return quantize_d<DType::F16>(it, x, out, box, c, levels, offset);
        default: return quantize_d<DType::BF16>(it, x, out, box, c, levels, offset);
    }
}

void dequantize(IType it, const Operand& q, const Operand& out, const Box& box, const float* scale,
                const float* zp, bool per_k) {
    switch (it) {
        case IType::I8: return dequantize_t<int8_t>(q, out, box, scale, zp, per_k);
        case IType::U8: return dequantize_t<uint8_t>(q, out, box, scale, zp, per_k);
        case IType::I16: return dequantize_t<int16_t>(q, out, box, scale, zp, per_k);
        case IType::U16: return dequantize_t<uint16_t>(q, out, box, scale, zp, per_k);
        default: return dequantize_t<int32_t>(q, out, box, scale, zp, per_k);
    }
}

}  // namespace ovq
