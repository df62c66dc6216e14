// Internal helpers shared by the kernel translation units: element loads and box walks.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "ovq/kernels.hpp"

namespace ovq::detail {

inline float f16_to_f32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else {  // subnormal: normalize
            exp = 127 - 15 + 1;
            while ((man & 0x400u) == 0) {
                man <<= 1;
                --exp;
            }
            man &= 0x3ffu;
            bits = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

inline float bf16_to_f32(uint16_t h) {
    const uint32_t bits = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

template <DType D>
struct Elem;
template <>
struct Elem<DType::F32> {
    using T = float;
    static float load(const T* p) { return *p; }
};
template <>
struct Elem<DType::F16> {
    using T = uint16_t;
    static float load(const T* p) { return f16_to_f32(*p); }
};
template <>
struct Elem<DType::BF16> {
    using T = uint16_t;
    static float load(const T* p) { return bf16_to_f32(*p); }
};

// Calls f(offsets..., n, strides...) for every innermost run of the box restricted to
// dim-0 range [lo, hi). `nops` operands share the box; offsets start at base[i].
template <int N, class F>
void walk(const int64_t (&base)[N], const int64_t* const (&strides)[N], const Box& box,
          int64_t lo, int64_t hi, F&& f) {
    const int nd = box.nd;
    int64_t shape[kMaxDims];
    for (int d = 0; d < nd; ++d) shape[d] = box.shape[d];
    int64_t off[N];
    for (int i = 0; i < N; ++i) off[i] = base[i] + lo * strides[i][0];
    shape[0] = hi - lo;
    if (shape[0] <= 0) return;
    if (nd == 1) {
        int64_t s[N];
        for (int i = 0; i < N; ++i) s[i] = strides[i][0];
        f(off, shape[0], s);
        return;
    }
    int64_t idx[kMaxDims] = {0};
    int64_t inner_s[N];
    for (int i = 0; i < N; ++i) inner_s[i] = strides[i][nd - 1];
    const int64_t n = shape[nd - 1];
    for (;;) {
        f(off, n, inner_s);
        int d = nd - 2;
        for (; d >= 0; --d) {
            ++idx[d];
            for (int i = 0; i < N; ++i) off[i] += strides[i][d];
            if (idx[d] < shape[d]) break;
            for (int i = 0; i < N; ++i) off[i] -= strides[i][d] * shape[d];
            idx[d] = 0;
        }
        if (d < 0) return;
    }
}

// Split work into tasks: per kept index when there are enough of them, otherwise split
// dim 0 of the box into `splits` parts for each k. Returns splits per k (>= 1).
inline int64_t splits_for(const Box& box) {
    const int nt = num_threads();
    int64_t r = 1;
    for (int d = 0; d < box.nd; ++d) r *= box.shape[d];
    if (nt <= 1 || box.k >= 4 * nt || r < (1 << 15)) return 1;
    int64_t s = 4 * nt;
    if (s > box.shape[0]) s = box.shape[0];
    return s < 1 ? 1 : s;
}

inline void split_range(int64_t n, int64_t parts, int64_t i, int64_t& lo, int64_t& hi) {
    lo = n * i / parts;
    hi = n * (i + 1) / parts;
}

inline int64_t box_size(const Box& box) {
    int64_t r = 1;
    for (int d = 0; d < box.nd; ++d) r *= box.shape[d];
    return r;
}

}  // namespace ovq::detail
