"""``ovq demo``: the built-in end-to-end run on the shipped digits CNN.

It mirrors the model through ovq (read → verify → write → read back), runs the
original and ovq's output on the real OpenVINO runtime (f32 hint) over the held-out
test images, then places FakeQuantize ops for the ANY target with min/max ranges over
the calibration images and reports FP32 vs INT8 accuracy, the INT8 layer audit and
latency.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ovq.files import private_tempdir


def _latency(model, runs: int = 200) -> float:
    """Median seconds of one single-image inference (f32 hint; INT8 layers run INT8)."""
    from ovq import runtime

    compiled = runtime.compile_model(model)
    request = compiled.create_infer_request()
    sample = np.zeros([1, 1, 8, 8], np.float32)
    for _ in range(20):
        request.infer([sample])
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        request.infer([sample])
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def run_demo(output: Path | None = None, *, echo: Callable[[str], None] = print) -> dict:
    """Run the demo; return the figures it printed.

    Args:
        output: Where to keep the IR ovq writes (default: a temporary folder).
        echo: Where to print lines.
    """
    from ovq import kernels_backend, runtime
    from ovq.data import demo_model_path, load_demo_data
    from ovq.ir import read_model, save_model
    from ovq.ir.summary import summarize

    source = demo_model_path()
    x, labels = load_demo_data("test")
    echo(f"demo model: {source}")
    echo(f"kernel backend: {kernels_backend()}")

    t0 = time.perf_counter()
    graph = read_model(source)
    graph.verify()
    t_read = time.perf_counter() - t0
    summary = summarize(graph)
    echo(f"read {summary.total_ops} ops, {summary.total_constant_bytes / 1024:.1f} KiB of weights "
         f"in {t_read * 1000:.1f} ms")

    with private_tempdir() as tmp:
        target = output or tmp / "digits_ovq.xml"
        t0 = time.perf_counter()
        save_model(graph, target)
        t_write = time.perf_counter() - t0
        written = read_model(target)
        written.verify()
        echo(f"wrote {target.name} in {t_write * 1000:.1f} ms; "
             f"{target.with_suffix('.bin').stat().st_size / 1024:.1f} KiB .bin")

        reference = runtime.infer(runtime.compile_model(str(source)), [x])[0]
        t0 = time.perf_counter()
        ours = runtime.infer(runtime.compile_model(str(target)), [x])[0]
        t_infer = time.perf_counter() - t0

    acc_ref = float((reference.argmax(1) == labels).mean())
    acc_ours = float((ours.argmax(1) == labels).mean())
    agreement = float((reference.argmax(1) == ours.argmax(1)).mean())
    identical = bool(np.array_equal(reference, ours))
    echo(f"FP32 accuracy on {len(labels)} held-out digits: original {acc_ref:.4f}, "
         f"through ovq {acc_ours:.4f} (top-1 agreement {agreement:.4f}, "
         f"outputs {'bitwise identical' if identical else 'DIFFERENT'})")
    echo(f"compile+infer of {len(labels)} images: {t_infer * 1000:.1f} ms")

    # INT8: ovq.quantize (placement for the ANY target, ranges from one streamed
    # statistics pass, fast bias correction, int8 weights) over the calibration images.
    from ovq.data import load_demo_data as _load
    from ovq.quantization import runtime_audit
    from ovq.quantization.quantize import quantize

    calib, _ = _load("calib")
    t0 = time.perf_counter()
    int8, report = quantize(graph, [calib[i : i + 1] for i in range(len(calib))], progress=False, return_report=True)
    t_quant = time.perf_counter() - t0
    audit = runtime_audit(int8)
    q_out = runtime.infer(runtime.compile_model(int8), [x])[0]
    acc_int8 = float((q_out.argmax(1) == labels).mean())
    echo(f"INT8 (ovq.quantize over {report.samples} calibration images, {t_quant:.2f} s): accuracy {acc_int8:.4f} "
         f"vs FP32 {acc_ref:.4f}; {audit.summary()}")
    echo(f"weights: {report.weight_bytes_before / 1024:.1f} KiB FP32 -> {report.weight_bytes_after / 1024:.1f} KiB int8; "
         f"{report.bias_corrected} biases corrected")
    latency = {name: _latency(model) for name, model in (("fp32", graph), ("int8", int8))}
    echo(f"latency per image (CPU, 1 request): FP32 {latency['fp32'] * 1e3:.3f} ms, "
         f"INT8 {latency['int8'] * 1e3:.3f} ms")
    return {
        "accuracy_int8": acc_int8,
        "int8_layers": audit.summary(),
        "accuracy_original": acc_ref,
        "accuracy_ovq": acc_ours,
        "agreement": agreement,
        "identical": identical,
        "ops": summary.total_ops,
    }
