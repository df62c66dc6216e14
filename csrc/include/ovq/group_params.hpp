// The scale, zero point and level bounds of one group of weights (NNCF 3.4's data-free
// integer quantization; semantics: ovq/kernels/reference.py group_params). Shared by
// the compression kernels (wcompress.cpp) and the data-aware searches (wsearch.cpp).
#pragma once

#include <cfloat>
#include <cmath>

namespace ovq {

struct GroupParams {
    float s, zp, lo, hi;  // scale, zero point (levels), clamp bounds of the levels
};

// From the group's minimum and maximum: asymmetric [0, 2^b - 1] with an integer zero
// point over a range widened to include 0, or symmetric [-2^(b-1), 2^(b-1) - 1] with
// the signed scale that sends the largest-magnitude weight to -2^(b-1).
inline GroupParams group_params(float mn, float mx, int bits, bool sym) {
    GroupParams p{};
    if (sym) {
        const float half = static_cast<float>(1 << (bits - 1));
        const float a = std::fabs(mn);
        p.s = (a >= mx ? a : -mx) / half;
        if (std::fabs(p.s) < FLT_EPSILON) p.s = FLT_EPSILON;
        p.zp = 0.0f;
        p.lo = -half;
        p.hi = half - 1.0f;
    } else {
        const float top = static_cast<float>((1 << bits) - 1);
        const float lo = mn < 0.0f ? mn : 0.0f;
        const float hi = mx > 0.0f ? mx : 0.0f;
        p.s = (hi - lo) / top;
        if (std::fabs(p.s) < FLT_EPSILON) p.s = FLT_EPSILON;
        const float z = -std::nearbyint(lo / p.s);
        p.zp = z < 0.0f ? 0.0f : (z > top ? top : z);
        p.lo = 0.0f;
        p.hi = top;
    }
    return p;
}

}  // namespace ovq
