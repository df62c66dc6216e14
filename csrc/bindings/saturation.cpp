// Binding of the INT8 pair-saturation analysis (see reference.py::pair_saturation).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "ovq/bindings.hpp"

namespace py = pybind11;

namespace ovq {

void register_saturation(py::module_& m) {
    m.def(
        "pair_saturation",
        [](py::array_t<uint8_t, py::array::c_style> a, py::array_t<int8_t, py::array::c_style> w) {
            if (a.ndim() != 2 || w.ndim() != 2) throw py::value_error("a and w must be 2-D");
            const int64_t rows = a.shape(0), k = a.shape(1), outs = w.shape(0);
            if (w.shape(1) != k) throw py::value_error("a and w must have the same number of columns");
            if (k % 2) throw py::value_error("the number of columns must be even (pad with a zero column)");
            py::array_t<double> err_sq(outs);
            py::array_t<int64_t> saturated(outs);
            const uint8_t* pa = a.data();
            const int8_t* pw = w.data();
            double* pe = err_sq.mutable_data();
            int64_t* ps = saturated.mutable_data();
            {
                py::gil_scoped_release nogil;
                pair_saturation(pa, rows, pw, outs, k, pe, ps);
            }
            return py::make_tuple(err_sq, saturated);
        },
        py::arg("a"), py::arg("w"),
        "Per weight row: Σ over rows of the squared int16 pair-saturation error, and the "
        "number of saturating pairs (u8 a x s8 w, pairs of adjacent columns).");
}

}  // namespace ovq
