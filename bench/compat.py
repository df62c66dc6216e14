"""NNCF call forms run both ways: ``nncf.quantize(...)`` and ``ovq.quantize(...)`` with the
very same NNCF objects (``nncf.Dataset``, ``nncf.IgnoredScope``, ``nncf.Subgraph``,
``AdvancedQuantizationParameters``, ...).

Usage: python bench/compat.py        (needs nncf installed: pip install nncf==3.4.0)

Models: the shipped digits CNN (calibration: 300 train images, evaluation: 100 test
images) and a small attention block (``tests/quantization/models.py``: ``sdpa_block``;
64 N(0,1) samples). For every call form the table gives, per tool, the FakeQuantize count
of the result and the SQNR (dB) of its output against the FP32 model on the evaluation
samples, or the error it raised. Inference is CPU at the f32 precision hint.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "quantization"))


def _sqnr(fp: Any, q: Any, samples: list[np.ndarray]) -> float:
    from ovq import runtime

    a = runtime.compile_model(fp)
    b = runtime.compile_model(q)
    sig = err = 0.0
    for s in samples:
        ra = np.asarray(a([s])[0], np.float64)
        rb = np.asarray(b([s])[0], np.float64)
        sig += float((ra ** 2).sum())
        err += float(((ra - rb) ** 2).sum())
    return 10 * np.log10(sig / max(err, 1e-30))


def _fqs(model: Any) -> int:
    return sum(o.get_type_name() == "FakeQuantize" for o in model.get_ops())


def _call(fn: Any) -> tuple[Any, str | None]:
    try:
        return fn(), None
    except Exception as exc:  # the table reports it
        msg = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return None, msg[:110]


def main() -> int:
    try:
        import nncf
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters as NncfAQP
        from nncf.quantization.range_estimator import RangeEstimatorParametersSet
    except ImportError:
        print("nncf is not installed (pip install nncf==3.4.0); nothing to compare")
        return 0
    import openvino as ov
    from models import sdpa_block

    import ovq
    from ovq.data import demo_model_path, load_demo_data

    core = ov.Core()
    digits = core.read_model(str(demo_model_path()))
    x_cal, _ = load_demo_data("calib")
    x_test, _ = load_demo_data("test")
    items = [(x_cal[i:i + 1], i) for i in range(300)]
    evaluation = [x_test[i:i + 1] for i in range(100)]
    convs = [o.get_friendly_name() for o in digits.get_ordered_ops() if o.get_type_name() == "Convolution"]
    relus = [o.get_friendly_name() for o in digits.get_ordered_ops() if o.get_type_name() == "Relu"]

    block = sdpa_block()
    shape = [d.get_length() for d in block.inputs[0].get_partial_shape()]
    rng = np.random.default_rng(0)
    block_items = [rng.standard_normal(shape).astype(np.float32) for _ in range(64)]
    block_eval = block_items[:16]

    def data():
        return nncf.Dataset(items, lambda item: item[0])

    def accuracy(compiled: Any, validation: Any) -> float:
        right = 0
        n = 0
        for x in validation:
            right += int(np.argmax(compiled([x])[0]) == np.argmax(digits_fp([x])[0]))
            n += 1
        return right / n

    from ovq import runtime

    digits_fp = runtime.compile_model(digits)

    forms: list[tuple[str, Any, list, dict]] = [
        ("quantize(m, Dataset(items, fn))", digits, evaluation, {}),
        ("subset_size=100, preset=MIXED", digits, evaluation,
         {"subset_size": 100, "preset": nncf.QuantizationPreset.MIXED}),
        ("target_device=CPU, fast_bias_correction=False", digits, evaluation,
         {"target_device": nncf.TargetDevice.CPU, "fast_bias_correction": False}),
        ("ignored_scope=IgnoredScope(names=[first conv])", digits, evaluation,
         {"ignored_scope": nncf.IgnoredScope(names=[convs[0]])}),
        ("IgnoredScope(types=[...], subgraphs=[Subgraph(...)])", digits, evaluation,
         {"ignored_scope": nncf.IgnoredScope(types=["MaxPool"], subgraphs=[
             nncf.Subgraph(inputs=[relus[0]], outputs=[convs[1]])], validate=False)}),
        ("IgnoredScope(names=['missing']) (validate=True)", digits, evaluation,
         {"ignored_scope": nncf.IgnoredScope(names=["missing"])}),
        ("AQP(overflow_fix=OverflowFix.DISABLE)", digits, evaluation,
         {"advanced_parameters": NncfAQP(overflow_fix=nncf.OverflowFix.DISABLE)}),
        ("AQP(activations_range_estimator_params=MINMAX)", digits, evaluation,
         {"advanced_parameters": NncfAQP(activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX)}),
        ("AQP(disable_bias_correction=True)", digits, evaluation,
         {"advanced_parameters": NncfAQP(disable_bias_correction=True)}),
        ("AQP(activations_range_estimator_params=HISTOGRAM)", digits, evaluation,
         {"advanced_parameters": NncfAQP(activations_range_estimator_params=RangeEstimatorParametersSet.HISTOGRAM)}),
        ("mode=QuantizationMode.FP8_E4M3", digits, evaluation, {"mode": nncf.QuantizationMode.FP8_E4M3}),
        ("transformer: model_type=TRANSFORMER", block, block_eval, {"model_type": nncf.ModelType.TRANSFORMER}),
        ("transformer: AQP(smooth_quant_alphas(matmul=0.5))", block, block_eval,
         {"model_type": nncf.ModelType.TRANSFORMER, "advanced_parameters": NncfAQP(
             smooth_quant_alphas=nncf.AdvancedSmoothQuantParameters(matmul=0.5))}),
    ]

    rows = []
    for title, model, samples, kwargs in forms:
        dataset = data() if model is digits else nncf.Dataset(block_items)
        results = []
        for tool in (nncf.quantize, ovq.quantize):
            q, err = _call(lambda tool=tool: tool(model, dataset, **kwargs))
            results.append((_fqs(q), _sqnr(model, q, samples)) if q is not None else err)
        rows.append((title, *results))

    def aac(tool: Any) -> Any:
        return tool(digits, data(), nncf.Dataset(evaluation), accuracy, max_drop=0.01,
                    drop_type=nncf.DropType.ABSOLUTE,
                    advanced_accuracy_restorer_parameters=nncf.AdvancedAccuracyRestorerParameters(
                        max_num_iterations=5))

    results = []
    for tool in (nncf.quantize_with_accuracy_control, ovq.quantize_with_accuracy_control):
        q, err = _call(lambda tool=tool: aac(tool))
        results.append((_fqs(q), _sqnr(digits, q, evaluation)) if q is not None else err)
    rows.append(("quantize_with_accuracy_control(m, Dataset, Dataset, fn, ...)", *results))

    def cell(r: Any) -> str:
        return f"{r[0]} FQ, {r[1]:.2f} dB" if isinstance(r, tuple) else f"error: {r}"

    print(f"nncf {nncf.__version__}, openvino {ov.__version__}, ovq {ovq.__version__}")
    print("| call form | nncf | ovq (same nncf objects) |")
    print("|---|---|---|")
    for title, a, b in rows:
        print(f"| `{title}` | {cell(a)} | {cell(b)} |")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(1)
