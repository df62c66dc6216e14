#include <pybind11/pybind11.h>

#include <string>
#include <thread>

#include "ovq/bindings.hpp"

namespace py = pybind11;

namespace ovq {

void register_info(py::module_& m) {
    m.def(
        "build_info",
        []() {
            py::dict info;
#if defined(__clang__)
            info["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
            info["compiler"] = std::string("gcc ") + __VERSION__;
#else
            info["compiler"] = std::string("unknown");
#endif
            info["hardware_threads"] = std::thread::hardware_concurrency();
            info["cpu_has_avx2"] = cpu_has_avx2();
            info["simd"] = simd_enabled() ? "avx2" : "generic";
            info["num_threads"] = num_threads();
#if defined(__SANITIZE_ADDRESS__)
            info["sanitize"] = true;
#else
            info["sanitize"] = false;
#endif
            return info;
        },
        "Compiler and machine facts the extension was built with, and runtime switches.");
    m.def("get_num_threads", &num_threads, "Threads the kernels use.");
    m.def("set_num_threads", &set_num_threads, py::arg("n"),
          "Set the kernel thread count; n <= 0 restores the default (OVQ_NUM_THREADS or all cores).");
    m.def("simd_enabled", &simd_enabled, "True if the AVX2/FMA/F16C path is in use.");
    m.def("set_simd", &set_simd, py::arg("enabled"),
          "Enable (if the CPU has it) or force off the AVX2 path; off = portable generic code.");
}

}  // namespace ovq
