"""FakeQuantize placement: plan on a frozen mirror, then apply typed commands.

:func:`plan_placement` reads a graph (never edits it) and a hardware descriptor and
returns a :class:`PlacementPlan`: a list of :class:`QuantizeActivation` and
:class:`QuantizeWeight` commands. :func:`apply_plan` inserts one FakeQuantize-1 per
command (five inputs ``x, il, ih, ol, oh``, ``auto_broadcast="numpy"``), named like
NNCF (``<producer>/fq_output_<port>``, ``<op>/fq_weights_<port>``).

Modules (this package re-exports the public names, so ``from
ovq.quantization.placement import X`` keeps working):

* :mod:`.op_tables`: op-type tables (weighted, eltwise, LPT precision-preserving,
  recurrent ports, transformer-ignored, ...), each with its source;
* :mod:`.commands`: the typed commands and :class:`PlacementPlan`;
* :mod:`.planner`: :func:`plan_placement` and the planner object behind it;
* :mod:`.view`, :mod:`.weights`, :mod:`.fused`, :mod:`.configs`, :mod:`.groups`: what the
  planner reads (graph facts, weight sources with typed skip reasons, fused patterns,
  quantizer configs and requests, unified-scale groups);
* :mod:`.apply`: :func:`apply_plan`, the only code here that edits a graph.

Rules implemented (docs/placement.md has the full list and the reasons):

* **Where** (descriptor): every op with an ``activations`` rule gets quantizers on its
  activation inputs: Convolution/GroupConvolution/ConvolutionBackpropData/MatMul on the
  data input (and on both MatMul inputs when both are activations), input-only ops
  (AvgPool, ReduceMean, MVN, ...) on input 0, eltwise ops on all inputs but only when at
  least two are activations (an eltwise op with a constant operand gains nothing from
  INT8 and would add a stray FQ). Ops with ``weights`` rules and a constant weight get
  a per-output-channel weight FQ. Ops with ``outputs`` rules (GNA) get an FQ after the
  op, or after its bias Add.
* **Upward propagation**: a quantizer that covers every consumer of a tensor moves up
  through agnostic producers (for LPT targets only through LPT precision-preserving
  ops, so the FQ still reaches the Conv/MatMul); at Concat it splits into one FQ per
  input, all sharing one unified range.
* **Branch merging**: quantizers that meet on one tensor merge into a single FQ
  (primary bit width first, then the lower bit width; symmetric wins over asymmetric).
* **Never inside fused patterns**: weighted op → bias/scale Add/Multiply chains and
  BatchNormInference, preprocessing chains after a Parameter, and everything feeding
  NMS/TopK back to the nearest weighted op are not quantized.
* **CPU INT8 rules**: activation FQs are per-tensor with 0 representable; weights are
  symmetric, per output channel, 255 levels (``q8_w_sym``), zero-filter fix.
* **Recurrent ops** (LSTM/GRU/RNN sequences and cells, when the descriptor has a rule):
  X and H (ports 0, 1) and the weights W and R; ports paired in ``unified_scales``
  share one range. On LPT targets W/R get one per-tensor range (per-channel INT8 LSTM
  miscomputes on the CPU plugin) and the X/H range is signed (it carries the hidden
  state, in (-1, 1)); the LSTM initial cell state C gets its own activation FQ (as NNCF);
  GRU with ``linear_before_reset`` is left float; H may be a constant (not quantized).
* **Per-channel activations** where the picked space is per-channel (CPU
  DepthWiseConvolution ``q8_a_ch``, NPU ``q8_ch``): axis 1, only while every merged
  request agrees; such a quantizer only moves up through MaxPool.
* **Priorities** (GNA3 ``input_priority_types``): requests from those op types win merges.
* **placement_rules**: ``single_fq_add`` (CPU_SPR: one input FQ per two-activation
  Add), ``transformer_quantize_multiply`` (CPU_SPR keeps Multiply quantizable).
* **ScaledDotProductAttention**: symmetric FQs on query and key (NNCF CPU setup).
* **Embedding** (descriptor pseudo-type; NNCF CPU/GPU/NPU setups): a Gather whose data
  (port 0) is a constant float table, optionally behind a Convert, gets a weight FQ on
  the table, per row (axis 0); a Gather of an activation stays agnostic.
* **Ignored patterns** named by the descriptor (:mod:`ovq.quantization.ignored_scope`).

Records: :func:`apply_plan` returns a :class:`~ovq.quantization.records.QuantizerTable`
(also stored as ``graph.meta[META_KEY]``) with one typed
:class:`~ovq.quantization.records.Quantizer` per inserted FakeQuantize: role, grid,
per-channel axes, the ops it feeds, its unified-scale group (weights share one only for
recurrent W/R), ``hidden_state`` for recurrent X/H groups (their range is made signed
before unifying the group), and its range once known.
"""

from __future__ import annotations

from ovq.quantization.placement.apply import apply_plan
from ovq.quantization.placement.commands import PlacementError, PlacementPlan, QuantizeActivation, QuantizeWeight
from ovq.quantization.placement.op_tables import (
    ATTENTION_PORTS,
    CONV_LIKE,
    CPU_INT8_RECURRENT,
    ELTWISE,
    FLOAT_PRECISIONS,
    LINEAR_TAIL,
    LPT_PRECISION_PRESERVING,
    PER_CHANNEL_PRESERVING,
    POSTPROCESSING,
    RECURRENT_PORTS,
    TRANSFORMER_IGNORED,
    WEIGHTED,
)
from ovq.quantization.placement.planner import MODEL_TYPES, PRESETS, plan_placement

__all__ = [
    "ATTENTION_PORTS",
    "CONV_LIKE",
    "CPU_INT8_RECURRENT",
    "ELTWISE",
    "FLOAT_PRECISIONS",
    "LINEAR_TAIL",
    "LPT_PRECISION_PRESERVING",
    "MODEL_TYPES",
    "PER_CHANNEL_PRESERVING",
    "POSTPROCESSING",
    "PRESETS",
    "RECURRENT_PORTS",
    "TRANSFORMER_IGNORED",
    "WEIGHTED",
    "PlacementError",
    "PlacementPlan",
    "QuantizeActivation",
    "QuantizeWeight",
    "apply_plan",
    "plan_placement",
]
