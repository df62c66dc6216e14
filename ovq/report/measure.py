"""What the report measures with OpenVINO on this machine: runtime precision and kernel
per layer, latency, and activation histograms.

* :func:`runtime_layers` reads ``get_runtime_model()`` of a compiled INT8 model:
  ``layerType``, ``runtimePrecision`` and ``primitiveType`` per IR layer (a compute node
  holding the layer wins over a fused one that only lists it).
* :func:`latency_ms` times synchronous inferences of a compiled model (median).
* :func:`activation_histograms` runs the FP model with the FakeQuantize inputs of the
  INT8 model as extra outputs and folds each into a histogram around its range, with the
  share of values outside it (saturation).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ovq.quantization.audit import INT8_PRECISIONS

COMPUTE_RUNTIME_TYPES = {"Convolution", "GroupConvolution", "Deconvolution", "FullyConnected",
                         "FullyConnectedCompressed", "MatMul", "RNNSeq", "RNNCell"}
HISTOGRAM_BINS = 64


@dataclass(frozen=True)
class RuntimeLayer:
    """How the CPU plugin runs one IR layer."""

    layer_type: str
    precision: str
    kernel: str

    @property
    def int8(self) -> bool:
        """An 8-bit integer kernel (as :class:`~ovq.quantization.audit.AuditEntry`)."""
        return self.precision in INT8_PRECISIONS and self.kernel.upper().endswith("_I8")


def _rt(info: Any, key: str) -> str:
    try:
        return str(info[key].astype(str)) if key in info else ""
    except (RuntimeError, AttributeError, TypeError):
        return ""


def runtime_layers(compiled: Any) -> dict[str, RuntimeLayer]:
    """Per IR layer name, how the compiled model runs it."""
    best: dict[str, tuple[int, RuntimeLayer]] = {}
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        layer_type = _rt(info, "layerType")
        if layer_type in ("Reorder", "Input", "Output", "Const", ""):
            continue
        entry = RuntimeLayer(layer_type, _rt(info, "runtimePrecision"), _rt(info, "primitiveType"))
        rank = 0 if layer_type in COMPUTE_RUNTIME_TYPES else 1
        for name in [op.get_friendly_name(), *_rt(info, "originalLayersNames").split(",")]:
            if "/Dequantization" in name:  # LPT renames a layer it moves a dequantization across
                name = name[:name.rindex("/Dequantization")]
            if name and (name not in best or rank < best[name][0]):
                best[name] = (rank, entry)
    return {name: entry for name, (_, entry) in best.items()}


def latency_ms(compiled: Any, inputs: Sequence[np.ndarray], *, budget_s: float = 0.1, min_runs: int = 3,
               warmup: int = 1) -> float:
    """Median wall time (ms) of one synchronous inference, over ``budget_s`` seconds of
    runs (at least ``min_runs``), after ``warmup`` runs."""
    request = compiled.create_infer_request()
    feed = list(inputs)
    for _ in range(warmup):
        request.infer(feed)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < budget_s:
        t0 = time.perf_counter()
        request.infer(feed)
        times.append(time.perf_counter() - t0)
        if len(times) >= 1000:
            break
    return 1000.0 * statistics.median(times)


@dataclass
class ObservedInput:
    """One activation FakeQuantize of the INT8 model, observed at its FP input."""

    fq: str
    layer: str
    low: np.ndarray  # broadcastable against the tensor
    high: np.ndarray
    edges: np.ndarray
    counts: np.ndarray
    outside: int = 0
    total: int = 0

    @property
    def saturation(self) -> float:
        return self.outside / self.total if self.total else 0.0


def activation_histograms(fp_model: Any, targets: Sequence[tuple[str, str, str, int, np.ndarray, np.ndarray]],
                          samples: Sequence[Sequence[np.ndarray]]) -> list[ObservedInput]:
    """Histogram the FP tensors that the INT8 model's activation FakeQuantize ops read.

    Args:
        fp_model: The FP ``openvino.Model`` (cloned, not modified).
        targets: ``(FakeQuantize name, layer name, producer op name, producer output,
            input_low, input_high)`` — the producer found in the FP model by op name.
        samples: Input arrays per sample.

    Returns:
        One :class:`ObservedInput` per target whose producer the FP model has. The bins
        span the range widened by a quarter on each side; values beyond fall in the end bins.
    """
    from ovq.kernels import Histogram, get_kernels
    from ovq.runtime import compile_model

    kernels = get_kernels()
    model = fp_model.clone()
    by_name = {op.get_friendly_name(): op for op in model.get_ordered_ops()}
    observed: list[ObservedInput] = []
    ports = []
    for fq, layer, producer, port, low, high in targets:
        op = by_name.get(producer)
        if op is None or port >= op.get_output_size() or not op.get_output_element_type(port).is_real():
            continue
        lo, hi = float(np.min(low)), float(np.max(high))
        pad = 0.25 * (hi - lo) if hi > lo else 1.0
        edges = np.linspace(lo - pad, hi + pad, HISTOGRAM_BINS + 1)
        observed.append(ObservedInput(fq, layer, np.asarray(low, np.float32), np.asarray(high, np.float32), edges,
                                      np.zeros(HISTOGRAM_BINS, np.int64)))
        ports.append(op.output(port))
    if not observed:
        return []
    first_extra = len(model.outputs)
    model.add_outputs(ports)
    compiled = compile_model(model, config={"PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    for sample in samples:
        request.infer(list(sample))
        for k, obs in enumerate(observed):
            x = np.asarray(request.get_output_tensor(first_extra + k).data, np.float32)
            try:
                outside = int(np.count_nonzero((x < obs.low) | (x > obs.high)))
            except ValueError:  # a per-channel range that does not broadcast: per tensor then
                outside = int(np.count_nonzero((x < obs.low.min()) | (x > obs.high.max())))
            obs.outside += outside
            obs.total += x.size
            # ovq's histogram kernel (native, one pass): counts are [below, bins..., above]
            counts = kernels.histogram(x, Histogram(obs.edges[0], obs.edges[-1], HISTOGRAM_BINS),
                                       name=obs.fq).counts
            obs.counts += counts[1:-1].astype(np.int64)
            obs.counts[0] += int(counts[0])
            obs.counts[-1] += int(counts[-1])
    return observed
