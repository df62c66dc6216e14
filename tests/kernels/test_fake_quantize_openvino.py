"""FakeQuantize emulation against OpenVINO's CPU plugin itself, compared bitwise.

With ``{"INFERENCE_PRECISION_HINT": "f32"}`` a standalone FQ compiles to a snippets
subgraph (flavor ``snippets``). For levels OpenVINO's low-precision transformations
handle (15/16, 255/256, 65535/65536) LPT first rewrites the FQ's output constants, so
those are compared with ``LP_TRANSFORMS_MODE=False``; ``SNIPPETS_MODE=DISABLE`` selects
the FakeQuantize node (flavor ``node``), matched on planar rank-3 inputs. See docs/kernels.md.
"""

from __future__ import annotations

import numpy as np
import pytest

ov = pytest.importorskip("openvino")
ops = pytest.importorskip("openvino.opset13")

from ovq.kernels import available_backends, get_kernels  # noqa: E402
from tests.kernels.conftest import backend_params  # noqa: E402

F32 = {"INFERENCE_PRECISION_HINT": "f32"}
NO_LPT = {**F32, "LP_TRANSFORMS_MODE": False}
NODE = {**NO_LPT, "SNIPPETS_MODE": "DISABLE"}
CORE = ov.Core()


def run_ov(x, il, ih, ol, oh, levels, config):
    p = ops.parameter(x.shape, ov.Type.f32)
    c = [ops.constant(np.asarray(v, np.float32)) for v in (il, ih, ol, oh)]
    fq = ops.fake_quantize(p, *c, levels)
    return CORE.compile_model(ov.Model([fq], [p]), "CPU", config)([x])[0]


CASES = [
    # (config, flavor, levels)
    (F32, "snippets", [3, 7, 100, 1000]),
    (NO_LPT, "snippets", [15, 16, 255, 256, 65535]),
    (NODE, "node", [3, 16, 255, 256, 65535]),
]


@pytest.mark.parametrize("backend", backend_params(available_backends()))
@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("per_channel", [False, True])
def test_fq_bitwise_vs_openvino(backend, case, per_channel):
    config, flavor, levels_list = CASES[case]
    k = get_kernels(backend)
    rng = np.random.default_rng(case * 10 + per_channel)
    for trial, levels in enumerate(levels_list):
        # The FakeQuantize node is matched on planar (rank-3) inputs; rank-4 inputs use a
        # blocked-layout kernel whose rounding differs (see docs/kernels.md).
        shape = (1, 5, 63) if flavor == "node" else (2, 5, 7, 9)
        if flavor == "node":
            rshape = (1, 5, 1) if per_channel else ()
        else:
            rshape = (1, 5, 1, 1) if per_channel else ((1, 1, 1, 9) if trial % 2 else ())
        scale = rng.choice([1e-3, 1.0, 100.0])
        lo = (-np.abs(rng.standard_normal(rshape)) * scale).astype(np.float32)
        hi = (np.abs(rng.standard_normal(rshape)) * scale + 1e-3).astype(np.float32)
        if trial % 3 == 2:
            lo = np.zeros_like(hi)  # unsigned range
        ol = (rng.standard_normal(rshape) * scale).astype(np.float32)
        oh = (rng.standard_normal(rshape) * scale).astype(np.float32)
        x = (rng.standard_normal(shape) * 1.5 * scale).astype(np.float32)
        x.flat[:4] = [np.nan, np.inf, -np.inf, 0.0]
        for out_lo, out_hi in ((lo, hi), (ol, oh)):
            want = run_ov(x, lo, hi, out_lo, out_hi, levels, config)
            got = k.fake_quantize(x, lo, hi, out_lo, out_hi, levels, flavor=flavor)
            np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32),
                                          err_msg=f"levels={levels} ranges {rshape}")


def test_fq_strided_input_matches_contiguous():
    k = get_kernels()
    x = np.random.default_rng(0).standard_normal((4, 6, 8)).astype(np.float32)
    v = x[:, ::-2, 1::2]
    a = k.fake_quantize(v, -1, 1, -1, 1, 256)
    b = k.fake_quantize(np.ascontiguousarray(v), -1, 1, -1, 1, 256)
    np.testing.assert_array_equal(a, b)
