// FakeQuantize emulation (OpenVINO CPU plugin arithmetic), integer quantization and
// dequantization. Semantics: ovq/kernels/reference.py (fake_quantize, quantize,
// dequantize). Bit-exactness relies on -ffp-contract=off (CMakeLists.txt): every fused
// multiply-add below is written out explicitly.
#include <cmath>
#include <cstdint>
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

template <DType D, class I>
bool quantize_t(const Operand& x, const Operand& out, const Box& box, const FQConsts& c, int levels,
                int offset) {
    const int64_t splits = detail::splits_for(box);
    std::vector<float> nfs(static_cast<size_t>(box.k * splits), 0.0f);
    const float top = static_cast<float>(levels - 1);
    const float off_f = static_cast<float>(offset);
    parallel_for(box.k * splits, detail::box_size(box) / splits, [&](int64_t t) {
        const int64_t k = t / splits;
        int64_t r0, r1;
        detail::split_range(box.shape[0], splits, t % splits, r0, r1);
        const K6 kc = consts_at(c, k);
        float nf = 0.0f;
        const int64_t base[2] = {x.koff[k], out.koff[k]};
        const int64_t* const strides[2] = {x.rstrides, out.rstrides};
        void* obase = const_cast<void*>(out.data);
        detail::walk<2>(base, strides, box, r0, r1, [&](const int64_t* off, int64_t n, const int64_t* s) {
            const auto* p = static_cast<const typename Elem<D>::T*>(x.data) + off[0];
            int64_t i = 0;
#if OVQ_X86
            if (s[0] == 1 && simd_enabled()) {
                alignas(32) float buf[256];
                for (; i + 256 <= n; i += 256) {
                    fq_avx2<D>(p + i, buf, 256, K6{kc.cl, kc.ch, kc.isc, kc.ish, 1.0f, 0.0f}, 1);
                    for (int j = 0; j < 256; ++j) {
                        const float raw = Elem<D>::load(p + i + j);
                        nf += raw - raw;
                        float q = buf[j];
                        q = q < 0.0f ? 0.0f : (q > top ? top : q);
                        store_int<I>(obase, off[1], i + j, s[1], q + off_f);
                    }
                }
            }
#endif
            for (; i < n; ++i) {
                const float raw = Elem<D>::load(p + i * s[0]);
                nf += raw - raw;
                const float v = xmax(xmin(raw, kc.ch), kc.cl);
                float q = std::nearbyint(std::fma(v, kc.isc, kc.ish));
                q = q < 0.0f ? 0.0f : (q > top ? top : q);
                if (q != q) q = 0.0f;  // only reachable for non-finite input (reported)
                store_int<I>(obase, off[1], i, s[1], q + off_f);
            }
        });
        nfs[static_cast<size_t>(t)] = nf;
    });
    for (float f : nfs)
        if (f != 0.0f) return false;
    return true;
}

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
                for (int64_t i = 0; i < n; ++i) o[i] = (static_cast<float>(p[i]) - z_) * s_;
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
