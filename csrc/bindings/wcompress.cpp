// Bindings of the weight-compression kernels (see reference.py: compress_groups,
// int8_asym_error, awq_errors, group_output_error). Weights arrive as C-contiguous 2-D arrays (f32, or f16/bf16 words).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "ovq/bindings.hpp"

namespace py = pybind11;

namespace ovq {

namespace {
using F32Array = py::array_t<float, py::array::c_style | py::array::forcecast>;

void check_weight(const py::array& w, int code, int64_t& rows, int64_t& cols) {
    if (w.ndim() != 2) throw py::value_error("weight must be 2-D");
    if (!(w.flags() & py::array::c_style)) throw py::value_error("weight must be C-contiguous");
    const auto need = code == 0 ? 4 : 2;
    if (code < 0 || code > 2 || w.itemsize() != need) throw py::value_error("dtype code does not match the weight");
    rows = w.shape(0);
    cols = w.shape(1);
}

template <class T>
T* out_ptr(py::array& a, int64_t n, const char* what) {
    if (!(a.flags() & py::array::c_style) || !a.writeable() || a.itemsize() != sizeof(T) || a.size() != n)
        throw py::value_error(std::string(what) + ": bad output array");
    return static_cast<T*>(a.mutable_data());
}
}  // namespace

void register_wcompress(py::module_& m) {
    m.def(
        "compress_groups",
        [](py::array w, int code, int bits, bool sym, int64_t group, bool packed, py::array q, py::array scale,
           py::array zp) {
            int64_t rows, cols;
            check_weight(w, code, rows, cols);
            if (bits != 4 && bits != 8) throw py::value_error("bits must be 4 or 8");
            if (group < 1 || cols % group != 0) throw py::value_error("group must divide the columns");
            if (packed && (bits != 4 || cols % 2 != 0)) throw py::value_error("packing needs 4 bits and even columns");
            auto* pq = out_ptr<uint8_t>(q, rows * (packed ? cols / 2 : cols), "q");
            auto* ps = out_ptr<float>(scale, rows * (cols / group), "scale");
            auto* pz = sym ? nullptr : out_ptr<uint8_t>(zp, rows * (cols / group), "zero_point");
            const void* data = w.data();
            bool ok;
            {
                py::gil_scoped_release nogil;
                ok = compress_groups(static_cast<DType>(code), data, rows, cols, bits, sym, group, packed, pq, ps, pz);
            }
            return ok;
        },
        py::arg("w"), py::arg("dtype_code"), py::arg("bits"), py::arg("sym"), py::arg("group"), py::arg("packed"),
        py::arg("q"), py::arg("scale"), py::arg("zero_point"),
        "Group-wise levels, scales and zero points of a 2-D weight; False if it is not finite.");
    m.def(
        "int8_asym_error",
        [](py::array w, int code, py::array out) {
            int64_t rows, cols;
            check_weight(w, code, rows, cols);
            auto* po = out_ptr<double>(out, rows, "out");
            const void* data = w.data();
            bool ok;
            {
                py::gil_scoped_release nogil;
                ok = int8_asym_error(static_cast<DType>(code), data, rows, cols, po);
            }
            return ok;
        },
        py::arg("w"), py::arg("dtype_code"), py::arg("out"),
        "Per-row mean squared error of per-row INT8_ASYM quantization; False if not finite.");
    m.def(
        "awq_errors",
        [](F32Array w, F32Array x, F32Array s, F32Array floor, F32Array alphas, int bits, bool sym) {
            if (w.ndim() != 2 || x.ndim() != 2 || x.shape(0) != w.shape(1)) throw py::value_error("w (O, g), x (g, n)");
            const int64_t rows = w.shape(0), g = w.shape(1), n = x.shape(1), na = alphas.size();
            if (s.size() != g || floor.size() != g) throw py::value_error("s and floor need g entries");
            if (bits != 4 && bits != 8) throw py::value_error("bits must be 4 or 8");
            py::array_t<double> out(na);
            double* po = out.mutable_data();
            {
                py::gil_scoped_release nogil;
                awq_errors(w.data(), rows, g, x.data(), n, s.data(), floor.data(), alphas.data(), na, bits, sym, po);
            }
            return out;
        },
        py::arg("w"), py::arg("x"), py::arg("s"), py::arg("floor"), py::arg("alphas"), py::arg("bits"), py::arg("sym"),
        "AWQ grid-search errors of one group (reference.py: awq_errors).");
    m.def(
        "group_output_error",
        [](F32Array w, F32Array x, F32Array scale, py::object zp, int bits, bool sym) {
            if (w.ndim() != 2 || x.ndim() != 2 || x.shape(0) != w.shape(1)) throw py::value_error("w (O, C), x (C, n)");
            if (scale.ndim() != 2 || scale.shape(0) != w.shape(0)) throw py::value_error("scale (O, G)");
            const int64_t rows = w.shape(0), cols = w.shape(1), n = x.shape(1), groups = scale.shape(1);
            if (groups < 1 || cols % groups != 0) throw py::value_error("groups must divide the columns");
            if (bits != 4 && bits != 8) throw py::value_error("bits must be 4 or 8");
            F32Array z;
            const float* pz = nullptr;
            if (!zp.is_none()) {
                z = zp.cast<F32Array>();
                if (z.size() != scale.size()) throw py::value_error("zero point must match the scale");
                pz = z.data();
            }
            py::array_t<double> out({rows, groups});
            double* po = out.mutable_data();
            {
                py::gil_scoped_release nogil;
                group_output_error(w.data(), rows, cols, x.data(), n, scale.data(), pz, groups, bits, sym, po);
            }
            return out;
        },
        py::arg("w"), py::arg("x"), py::arg("scale"), py::arg("zero_point"), py::arg("bits"), py::arg("sym"),
        "Scale estimation's per-row, per-group output errors (reference.py: group_output_error).");
}

}  // namespace ovq
