#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "ovq/kernels.hpp"

namespace ovq {
// Build information: compiler, SIMD baseline, thread count, runtime switches.
void register_info(pybind11::module_& m);
// Statistics reducers: minmax, moments, quantile, histogram, quant_error.
void register_reduce(pybind11::module_& m);
// FakeQuantize emulation, quantize, dequantize.
void register_quant(pybind11::module_& m);
// INT8 pair saturation (u8 x s8 products summed into int16 pairs).
void register_saturation(pybind11::module_& m);
// Weight compression: compress_groups, int8_asym_error, awq_errors, group_output_error.
void register_wcompress(pybind11::module_& m);

namespace bind {

using I64Array = pybind11::array_t<int64_t, pybind11::array::c_style | pybind11::array::forcecast>;

// One operand described by ovq/kernels/_layout.py, checked to stay inside `flat`.
struct OperandArgs {
    pybind11::array flat;
    I64Array koff;
    I64Array rstrides;
};

inline Operand make_operand(const OperandArgs& a, const I64Array& rshape, int64_t k,
                            bool writable, const char* what) {
    const auto nd = rshape.size();
    if (nd < 1 || nd > kMaxDims || a.rstrides.size() != nd)
        throw pybind11::value_error(std::string(what) + ": bad box rank");
    if (a.koff.size() != k) throw pybind11::value_error(std::string(what) + ": bad offsets");
    if (a.flat.ndim() != 1 || (a.flat.strides(0) != a.flat.itemsize() && a.flat.shape(0) > 1))
        throw pybind11::value_error(std::string(what) + ": flat view must be 1-D contiguous");
    if (writable && !a.flat.writeable()) throw pybind11::value_error(std::string(what) + ": read-only");
    const int64_t span = a.flat.shape(0);
    const int64_t* sh = rshape.data();
    const int64_t* st = a.rstrides.data();
    int64_t lo = 0, hi = 0;
    for (pybind11::ssize_t d = 0; d < nd; ++d) {
        if (sh[d] < 1) throw pybind11::value_error(std::string(what) + ": empty box");
        const int64_t ext = (sh[d] - 1) * st[d];
        (ext < 0 ? lo : hi) += ext;
    }
    const int64_t* ko = a.koff.data();
    for (int64_t i = 0; i < k; ++i) {
        if (ko[i] + lo < 0 || ko[i] + hi >= span)
            throw pybind11::value_error(std::string(what) + ": offsets out of bounds");
    }
    Operand op;
    op.data = a.flat.data();
    op.koff = ko;
    op.rstrides = st;
    return op;
}

inline Box make_box(const I64Array& rshape, int64_t k) {
    Box b;
    b.k = k;
    b.nd = static_cast<int>(rshape.size());
    b.shape = rshape.data();
    return b;
}

inline DType float_dtype(const pybind11::array& flat, int code) {
    if (code < 0 || code > 2) throw pybind11::value_error("dtype code must be 0 (f32), 1 (f16), 2 (bf16)");
    const auto need = code == 0 ? 4 : 2;
    if (flat.itemsize() != need) throw pybind11::value_error("flat itemsize does not match dtype code");
    return static_cast<DType>(code);
}

}  // namespace bind
}  // namespace ovq
