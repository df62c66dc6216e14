// The one pybind11 translation unit that defines `ovq._native`.
// Each kernel area registers itself through a register_<area>() function declared in
// ovq/bindings.hpp, so this file stays a list.
#include <pybind11/pybind11.h>

#include "ovq/bindings.hpp"

namespace py = pybind11;

PYBIND11_MODULE(_native, m) {
    m.doc() = "ovq native kernels (statistics, weight quantization, bias correction)";
    m.attr("ABI_VERSION") = 3;
    ovq::register_info(m);
    ovq::register_reduce(m);
    ovq::register_quant(m);
    ovq::register_saturation(m);
    ovq::register_wcompress(m);
}
