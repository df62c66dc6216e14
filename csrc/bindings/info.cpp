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
            return info;
        },
        "Compiler and machine facts the extension was built with.");
}

}  // namespace ovq
