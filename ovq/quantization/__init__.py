"""Quantization: FakeQuantize placement, min/max ranges, and the CPU runtime audit.

``place_fake_quantize(model, target=..., preset=..., model_type=..., ignored_scope=...,
calibration_samples=...)`` returns the same kind of model it was given (an
``openvino.Model``, an edited :class:`ovq.Graph`, or a Graph for a path), like
:func:`ovq.run_pipeline`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ovq.quantization.audit import AuditEntry, AuditReport, runtime_audit
from ovq.quantization.ignored_scope import IgnoredScope, IgnoredScopeError, Subgraph
from ovq.quantization.phases import fill_ranges_minmax
from ovq.quantization.placement import (
    PlacementError,
    PlacementPlan,
    QuantizeActivation,
    QuantizeWeight,
    apply_plan,
    plan_placement,
)
from ovq.quantization.records import META_KEY, QUANTIZED_OPS_KEY, QConfig, Quantizer, QuantizerTable, Role

if TYPE_CHECKING:
    import openvino as ov

    from ovq.hw import HardwareDescriptor
    from ovq.ir import Graph

__all__ = [
    "META_KEY",
    "AuditEntry",
    "AuditReport",
    "IgnoredScope",
    "IgnoredScopeError",
    "PlacementError",
    "PlacementPlan",
    "QConfig",
    "QuantizeActivation",
    "QuantizeWeight",
    "Quantizer",
    "QuantizerTable",
    "Role",
    "Subgraph",
    "apply_plan",
    "fill_ranges_minmax",
    "place_fake_quantize",
    "plan_placement",
    "quantize_graph",
    "runtime_audit",
]


def quantize_graph(
    graph: Graph,
    target: str | HardwareDescriptor = "ANY",
    *,
    preset: str | None = None,
    model_type: str | None = None,
    ignored_scope: IgnoredScope | dict | None = None,
    calibration_samples: Iterable[Any] | None = None,
    strict: bool = False,
) -> PlacementPlan:
    """Plan and insert FakeQuantize ops into ``graph`` in place; with samples, set the
    activation ranges from their global min/max (:func:`fill_ranges_minmax`). Constant
    subgraphs feeding weights are folded first (:mod:`.placement.weight_paths`)."""
    from ovq.quantization.placement.weight_paths import fold_weight_paths

    fold_weight_paths(graph)
    graph.infer_shapes()
    plan = plan_placement(graph, target, preset=preset, model_type=model_type, ignored_scope=ignored_scope,
                          strict=strict)
    fp_model = graph.to_ov() if calibration_samples is not None else None
    apply_plan(graph, plan)
    graph.meta[QUANTIZED_OPS_KEY] = [graph.op(n).name for n in plan.quantized_ops]
    if calibration_samples is not None:
        fill_ranges_minmax(graph, calibration_samples, fp_model=fp_model)
    return plan


def place_fake_quantize(
    model: ov.Model | Graph | str | os.PathLike[str],
    target: str | HardwareDescriptor = "ANY",
    preset: str | None = None,
    model_type: str | None = None,
    ignored_scope: IgnoredScope | dict | None = None,
    calibration_samples: Iterable[Any] | None = None,
    *,
    strict: bool = False,
) -> Any:
    """Insert FakeQuantize ops where ``target``'s descriptor allows.

    Args:
        model: ``openvino.Model`` (a new one is returned), :class:`ovq.Graph` (edited in
            place and returned) or a model path (the edited Graph is returned).
        target: Target name (``ANY``, ``CPU``, ``GPU``, ``NPU``, ``GNA``, ...) or a descriptor.
        preset: ``performance`` (symmetric activations; default), ``mixed`` (asymmetric
            activations; default for transformers) or ``accuracy``.
        model_type: ``None`` or ``"transformer"``.
        ignored_scope: :class:`IgnoredScope` or a dict with ``names``, ``types``,
            ``patterns``, ``subgraphs``.
        calibration_samples: Inputs to run for min/max activation ranges; without them
            activation FQs keep the placeholder range [0, 1].
        strict: Raise :class:`IgnoredScopeError` when an ignored-scope entry matches nothing.
    """
    import openvino as ov

    from ovq.ir import Graph, read_model

    graph = read_model(model)
    if not isinstance(model, Graph):
        graph = graph.copy() if graph is model else graph
    quantize_graph(graph, target, preset=preset, model_type=model_type, ignored_scope=ignored_scope,
                   calibration_samples=calibration_samples, strict=strict)
    if isinstance(model, ov.Model):
        return graph.to_ov()
    return graph
