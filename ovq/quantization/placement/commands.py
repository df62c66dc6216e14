"""The typed commands a placement plan is made of, and the plan itself.

:func:`~ovq.quantization.placement.plan_placement` emits them without touching the graph;
:func:`~ovq.quantization.placement.apply_plan` turns each command into one FakeQuantize
and one :class:`~ovq.quantization.records.Quantizer` record. Node ids refer to the graph
the plan was made for, so a plan is only valid until that graph is edited.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ovq.errors import OvqError
from ovq.quantization.records import QConfig


class PlacementError(OvqError):
    """Bad placement options (unknown preset or model type) or an unplaceable model."""


@dataclass(frozen=True)
class QuantizeActivation:
    """Insert one FQ on output ``out_index`` of ``producer``, read by ``consumers``.

    Attributes:
        producer: Node id of the op whose output is quantized.
        out_index: That op's output port.
        consumers: ``(op, input)`` pairs the FQ feeds (all value consumers of the
            tensor, or the quantized subset of them).
        config: Integer grid and mode.
        group: Record role: ``"activations"`` or ``"outputs"`` (GNA output FQs).
        unified: Id of the group of FQs sharing one range (Concat inputs, recurrent
            X/H), or None.
        per_channel_axis: Channel axis of a per-channel range, or None.
        range_include: Interval the range must cover, or None.
        hidden_state: The range also carries a recurrent hidden state (X/H of LSTM/GRU):
            it must be signed, whatever the sign of the observed values.
    """

    producer: int
    out_index: int
    consumers: tuple[tuple[int, int], ...]
    config: QConfig
    group: str = "activations"
    unified: int | None = None
    per_channel_axis: int | None = None
    range_include: tuple[float, float] | None = None
    hidden_state: bool = False


@dataclass(frozen=True, eq=False)
class QuantizeWeight:
    """Insert one FQ between the constant weight ``source`` and input ``input_index`` of ``op``.

    ``input_low``/``input_high`` are already shaped for broadcasting (per output channel).
    ``unified``: weights sharing one range (recurrent W and R) carry the same group id.
    """

    op: int
    input_index: int
    source: tuple[int, int]
    config: QConfig
    input_low: np.ndarray
    input_high: np.ndarray
    unified: int | None = None
    axes: tuple[int, ...] = ()  # output-channel axes of a per-channel range


@dataclass
class PlacementPlan:
    """What :func:`~ovq.quantization.placement.plan_placement` decided.

    Attributes:
        activations: Activation/output FQs, in the order they are inserted.
        weights: Weight FQs, inserted before the activation FQs.
        quantized_ops: Node ids of the ops placement means to run in INT8 (what the
            runtime audit checks).
        skipped: ``(op name, reason)`` for quantizable ops left float.
        ignored_patterns: Descriptor pattern name -> names of the ops it kept float.
    """

    activations: list[QuantizeActivation] = field(default_factory=list)
    weights: list[QuantizeWeight] = field(default_factory=list)
    quantized_ops: list[int] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    ignored_patterns: dict[str, list[str]] = field(default_factory=dict)
