#pragma once
#include <pybind11/pybind11.h>

namespace ovq {
// Build information: compiler, SIMD baseline, thread count.
void register_info(pybind11::module_& m);
}  // namespace ovq
