"""FakeQuantize placement side by side: ovq vs NNCF, FQ counts and CPU INT8 coverage.

Usage: python bench/placement.py [MODEL ...]   (default: digits resnet_like
efficientnet_lite0 minilm silero_vad and the light zoo CNNs)

Both tools see the same model and the same calibration samples (one batch from
``example_inputs``). NNCF runs with ``compress_weights=False`` so its weight quantizers
stay FakeQuantize ops and both counts mean the same thing (activation + weight FQs).
INT8 coverage comes from the same ``runtime_audit`` for both. nncf is a bench-only
dependency (never imported by ovq).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import ovq
from ovq.quantization import place_fake_quantize, runtime_audit

# The test assets live with the tests (tests/ovq_testing), not in the installed ovq.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from ovq_testing.assets import ONNX_LIGHT_MODELS, AssetUnavailable, asset_path, example_inputs  # noqa: E402

DEFAULT = ["digits", "resnet_like", "efficientnet_lite0", "minilm", "silero_vad",
           *(f"onnx_light/{m}" for m in ONNX_LIGHT_MODELS)]
# Models whose weights arrive as constant subgraphs: fold them first (as the tests do).
FOLD_FIRST = ("onnx_light/", "silero_vad")


def count_fq(model) -> int:
    return sum(op.get_type_name() == "FakeQuantize" for op in model.get_ops())


def fq_kinds(model) -> tuple[int, int]:
    """(activation FQs, weight FQs): a weight FQ reads a constant (possibly through Convert)."""
    acts = weights = 0
    for op in model.get_ops():
        if op.get_type_name() != "FakeQuantize":
            continue
        src = op.input_value(0).get_node()
        while src.get_type_name() == "Convert":
            src = src.input_value(0).get_node()
        if src.get_type_name() == "Constant":
            weights += 1
        else:
            acts += 1
    return acts, weights


def main(names: list[str]) -> None:
    import nncf

    logging.getLogger("nncf").setLevel(logging.ERROR)
    rows = []
    for name in names:
        try:
            graph = ovq.read_model(asset_path(name))
            x = example_inputs(name, 1 if name == "silero_vad" else 4)
        except AssetUnavailable as exc:
            print(f"skip {name}: {exc}", file=sys.stderr)
            continue
        if name.startswith(FOLD_FIRST):
            graph = ovq.run_pipeline(graph, "fold-constants,fuse-batchnorm,eliminate-dead-code")
        transformer = name == "minilm"
        fp = graph.to_ov()
        t = time.perf_counter()
        q = place_fake_quantize(graph.copy(), model_type="transformer" if transformer else None, calibration_samples=[x])
        t_ovq = time.perf_counter() - t
        ovq_report = runtime_audit(q)
        q_ov = q.to_ov()
        kwargs = {"model_type": nncf.ModelType.TRANSFORMER} if transformer else {}
        t = time.perf_counter()
        nq = nncf.quantize(fp, nncf.Dataset([x]), subset_size=1, fast_bias_correction=True,
                           advanced_parameters=nncf.AdvancedQuantizationParameters(backend_params={"compress_weights": False},
                                                                                    disable_bias_correction=True),
                           **kwargs)
        t_nncf = time.perf_counter() - t
        nncf_report = runtime_audit(nq)
        oa, ow = fq_kinds(q_ov)
        na, nw = fq_kinds(nq)
        rows.append((name, oa, ow, ovq_report.int8_count, len(ovq_report.entries), na, nw, nncf_report.int8_count,
                     len(nncf_report.entries), t_ovq, t_nncf))
        print(f"done {name}", file=sys.stderr)
    head = f"{'model':<26} {'ovq FQ (act+w)':>15} {'ovq INT8':>9} {'NNCF FQ (act+w)':>16} {'NNCF INT8':>10} {'ovq s':>6} {'nncf s':>7}"
    print(head)
    print("-" * len(head))
    for name, oa, ow, ok, on, na, nw, nk, nn, to, tn in rows:
        print(f"{name:<26} {oa + ow:>5} ({oa:>3}+{ow:>3}) {ok:>4}/{on:<4} {na + nw:>6} ({na:>3}+{nw:>3}) {nk:>5}/{nn:<4}"
              f" {to:>6.2f} {tn:>7.2f}")


if __name__ == "__main__":
    main(sys.argv[1:] or DEFAULT)
