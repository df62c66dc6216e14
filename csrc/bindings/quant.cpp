// Bindings of FakeQuantize emulation, quantize and dequantize (see reference.py).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "ovq/bindings.hpp"

namespace py = pybind11;

namespace ovq {

using bind::I64Array;
using F32Array = py::array_t<float, py::array::c_style | py::array::forcecast>;

namespace {
IType int_type(const py::array& flat, int code) {
    static const int sizes[] = {1, 1, 2, 2, 4};
    if (code < 0 || code > 4) throw py::value_error("integer type code must be 0..4 (i8,u8,i16,u16,i32)");
    if (flat.itemsize() != sizes[code]) throw py::value_error("flat itemsize does not match integer type code");
    return static_cast<IType>(code);
}

FQConsts fq_consts(const F32Array& c, int64_t k, int rows) {
    if (c.ndim() != 2 || c.shape(0) != rows) throw py::value_error("constants must have shape (rows, K or 1)");
    const int64_t kc = c.shape(1);
    if (kc != 1 && kc != k) throw py::value_error("constants must have 1 or K columns");
    const float* p = c.data();
    FQConsts r{};
    const float* rowp[6] = {nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
    for (int i = 0; i < rows; ++i) rowp[i] = p + i * kc;
    r.cl = rowp[0];
    r.ch = rowp[1];
    r.isc = rowp[2];
    r.ish = rowp[3];
    r.osc = rows > 4 ? rowp[4] : rowp[2];
    r.osh = rows > 5 ? rowp[5] : rowp[3];
    r.per_k = kc != 1;
    return r;
}
}  // namespace

void register_quant(py::module_& m) {
    m.def(
        "fake_quantize",
        [](py::array xflat, int code, I64Array xkoff, I64Array xrstrides, py::array oflat, I64Array okoff,
           I64Array orstrides, I64Array rshape, F32Array consts, int flavor) {
            const int64_t k = xkoff.size();
            const Operand x = bind::make_operand({xflat, xkoff, xrstrides}, rshape, k, false, "x");
            const Operand o = bind::make_operand({oflat, okoff, orstrides}, rshape, k, true, "out");
            if (oflat.itemsize() != 4) throw py::value_error("out must be float32");
            const Box box = bind::make_box(rshape, k);
            const DType dt = bind::float_dtype(xflat, code);
            if (flavor != 0 && flavor != 1) throw py::value_error("flavor must be 0 (snippets) or 1 (node)");
            const FQConsts c = fq_consts(consts, k, 6);
            py::gil_scoped_release nogil;
            fake_quantize(dt, x, o, box, c, flavor);
        },
        py::arg("xflat"), py::arg("dtype_code"), py::arg("xkoff"), py::arg("xrstrides"), py::arg("oflat"),
        py::arg("okoff"), py::arg("orstrides"), py::arg("rshape"), py::arg("consts"), py::arg("flavor"),
        "FakeQuantize with precomputed constants rows (cl, ch, isc, ish, osc, osh) x (K or 1).");
    m.def(
        "quantize",
        [](py::array xflat, int code, I64Array xkoff, I64Array xrstrides, py::array oflat, int itype,
           I64Array okoff, I64Array orstrides, I64Array rshape, F32Array consts, int levels, int offset) {
            const int64_t k = xkoff.size();
            const Operand x = bind::make_operand({xflat, xkoff, xrstrides}, rshape, k, false, "x");
            const Operand o = bind::make_operand({oflat, okoff, orstrides}, rshape, k, true, "out");
            const Box box = bind::make_box(rshape, k);
            const DType dt = bind::float_dtype(xflat, code);
            const IType it = int_type(oflat, itype);
            if (levels < 2 || levels > 65536) throw py::value_error("levels must be in [2, 65536]");
            const FQConsts c = fq_consts(consts, k, 4);
            bool ok;
            {
                py::gil_scoped_release nogil;
                ok = quantize(dt, x, it, o, box, c, levels, offset);
            }
            return ok;
        },
        py::arg("xflat"), py::arg("dtype_code"), py::arg("xkoff"), py::arg("xrstrides"), py::arg("oflat"),
        py::arg("itype"), py::arg("okoff"), py::arg("orstrides"), py::arg("rshape"), py::arg("consts"),
        py::arg("levels"), py::arg("offset"),
        "Node-flavor FakeQuantize level index + offset stored as an integer; False if x is not finite.");
    m.def(
        "dequantize",
        [](py::array qflat, int itype, I64Array qkoff, I64Array qrstrides, py::array oflat, I64Array okoff,
           I64Array orstrides, I64Array rshape, F32Array scale, F32Array zp) {
            const int64_t k = qkoff.size();
            const Operand q = bind::make_operand({qflat, qkoff, qrstrides}, rshape, k, false, "q");
            const Operand o = bind::make_operand({oflat, okoff, orstrides}, rshape, k, true, "out");
            if (oflat.itemsize() != 4) throw py::value_error("out must be float32");
            const Box box = bind::make_box(rshape, k);
            const IType it = int_type(qflat, itype);
            if (scale.size() != zp.size() || (scale.size() != 1 && scale.size() != k))
                throw py::value_error("scale/zero_point must have 1 or K entries");
            const bool per_k = scale.size() != 1;
            const float* ps = scale.data();
            const float* pz = zp.data();
            py::gil_scoped_release nogil;
            dequantize(it, q, o, box, ps, pz, per_k);
        },
        py::arg("qflat"), py::arg("itype"), py::arg("qkoff"), py::arg("qrstrides"), py::arg("oflat"),
        py::arg("okoff"), py::arg("orstrides"), py::arg("rshape"), py::arg("scale"), py::arg("zero_point"),
        "float32(q - zero_point) * scale per kept index.");
}

}  // namespace ovq
