// Bindings of the statistics reducers. Each takes an operand described by
// ovq/kernels/_layout.py (flat view, kept-index offsets, box strides) and the box shape,
// releases the GIL while the kernel runs, and returns (results..., all_finite).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "ovq/bindings.hpp"

namespace py = pybind11;

namespace ovq {

using bind::I64Array;
using F64Array = py::array_t<double, py::array::c_style | py::array::forcecast>;

void register_reduce(py::module_& m) {
    m.def(
        "minmax",
        [](py::array flat, int code, I64Array koff, I64Array rstrides, I64Array rshape) {
            const int64_t k = koff.size();
            const Operand x = bind::make_operand({flat, koff, rstrides}, rshape, k, false, "x");
            const Box box = bind::make_box(rshape, k);
            const DType dt = bind::float_dtype(flat, code);
            py::array_t<float> mn(k), mx(k);
            float* pmn = mn.mutable_data();
            float* pmx = mx.mutable_data();
            bool ok;
            {
                py::gil_scoped_release nogil;
                ok = minmax(dt, x, box, pmn, pmx);
            }
            return py::make_tuple(mn, mx, ok);
        },
        py::arg("flat"), py::arg("dtype_code"), py::arg("koff"), py::arg("rstrides"), py::arg("rshape"),
        "Per kept index min and max (float32) and whether all values were finite.");
    m.def(
        "moments",
        [](py::array flat, int code, I64Array koff, I64Array rstrides, I64Array rshape) {
            const int64_t k = koff.size();
            const Operand x = bind::make_operand({flat, koff, rstrides}, rshape, k, false, "x");
            const Box box = bind::make_box(rshape, k);
            const DType dt = bind::float_dtype(flat, code);
            py::array_t<float> mn(k), mx(k);
            py::array_t<double> sum(k), sumsq(k);
            float* pmn = mn.mutable_data();
            float* pmx = mx.mutable_data();
            double* ps = sum.mutable_data();
            double* pq = sumsq.mutable_data();
            bool ok;
            {
                py::gil_scoped_release nogil;
                ok = moments(dt, x, box, pmn, pmx, ps, pq);
            }
            return py::make_tuple(mn, mx, sum, sumsq, ok);
        },
        py::arg("flat"), py::arg("dtype_code"), py::arg("koff"), py::arg("rstrides"), py::arg("rshape"),
        "Per kept index min, max (float32), sum and sum of squares (float64), all-finite flag.");
    m.def(
        "quantile",
        [](py::array flat, int code, I64Array koff, I64Array rstrides, I64Array rshape, F64Array q,
           bool absolute) {
            const int64_t k = koff.size();
            const Operand x = bind::make_operand({flat, koff, rstrides}, rshape, k, false, "x");
            const Box box = bind::make_box(rshape, k);
            const DType dt = bind::float_dtype(flat, code);
            const auto nq = static_cast<int>(q.size());
            for (int i = 0; i < nq; ++i)
                if (!(q.data()[i] >= 0.0 && q.data()[i] <= 1.0)) throw py::value_error("q must be in [0, 1]");
            py::array_t<double> out({static_cast<py::ssize_t>(nq), static_cast<py::ssize_t>(k)});
            double* po = out.mutable_data();
            const double* pq = q.data();
            bool ok;
            {
                py::gil_scoped_release nogil;
                ok = quantile(dt, x, box, pq, nq, absolute, po);
            }
            return py::make_tuple(out, ok);
        },
        py::arg("flat"), py::arg("dtype_code"), py::arg("koff"), py::arg("rstrides"), py::arg("rshape"),
        py::arg("q"), py::arg("absolute"), "Linear-interpolation quantiles by selection (nth_element).");
    m.def(
        "histogram",
        [](py::array flat, int code, I64Array koff, I64Array rstrides, I64Array rshape, F64Array lo,
           F64Array hi, int64_t bins, bool absolute) {
            const int64_t k = koff.size();
            const Operand x = bind::make_operand({flat, koff, rstrides}, rshape, k, false, "x");
            const Box box = bind::make_box(rshape, k);
            const DType dt = bind::float_dtype(flat, code);
            if (bins < 1) throw py::value_error("bins must be >= 1");
            if (lo.size() != k || hi.size() != k) throw py::value_error("lo/hi must have one entry per kept index");
            for (int64_t i = 0; i < k; ++i)
                if (!(hi.data()[i] > lo.data()[i])) throw py::value_error("histogram needs hi > lo");
            py::array_t<int64_t> out({static_cast<py::ssize_t>(k), static_cast<py::ssize_t>(bins + 2)});
            int64_t* po = out.mutable_data();
            const double* pl = lo.data();
            const double* ph = hi.data();
            bool ok;
            {
                py::gil_scoped_release nogil;
                ok = histogram(dt, x, box, pl, ph, bins, absolute, po);
            }
            return py::make_tuple(out, ok);
        },
        py::arg("flat"), py::arg("dtype_code"), py::arg("koff"), py::arg("rstrides"), py::arg("rshape"),
        py::arg("lo"), py::arg("hi"), py::arg("bins"), py::arg("absolute"),
        "Per kept index counts: underflow, bins equal-width bins over [lo, hi], overflow.");
    m.def(
        "quant_error",
        [](py::array xflat, int code, I64Array xkoff, I64Array xrstrides, py::array yflat, I64Array ykoff,
           I64Array yrstrides, I64Array rshape) {
            const int64_t k = xkoff.size();
            const Operand x = bind::make_operand({xflat, xkoff, xrstrides}, rshape, k, false, "x");
            const Operand y = bind::make_operand({yflat, ykoff, yrstrides}, rshape, k, false, "y");
            const Box box = bind::make_box(rshape, k);
            const DType dt = bind::float_dtype(xflat, code);
            bind::float_dtype(yflat, code);
            py::array_t<double> sse(k), ssx(k);
            double* pe = sse.mutable_data();
            double* px = ssx.mutable_data();
            bool ok;
            {
                py::gil_scoped_release nogil;
                ok = quant_error(dt, x, y, box, pe, px);
            }
            return py::make_tuple(sse, ssx, ok);
        },
        py::arg("xflat"), py::arg("dtype_code"), py::arg("xkoff"), py::arg("xrstrides"), py::arg("yflat"),
        py::arg("ykoff"), py::arg("yrstrides"), py::arg("rshape"),
        "Per kept index sum of squared differences and sum of squares of x (float64).");
}

}  // namespace ovq
