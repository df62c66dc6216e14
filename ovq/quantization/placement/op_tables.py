"""Op-type tables the FakeQuantize planner consults.

Every table holds OpenVINO op type names (``Op.ov_type``). Which op types get quantizers
at all, and with which grids, is the hardware descriptor's business
(``hw_configs/*.toml``); these tables hold the facts placement needs beyond it: which
ops carry weights, what LPT lets a quantizer travel through, which ports of recurrent
and attention ops are quantized, what a transformer keeps in float.

The tables follow OpenVINO's Low Precision Transformations and what the CPU plugin was
measured to run in INT8; ``docs/placement.md`` lists every placement rule with its reason.
"""

from __future__ import annotations

WEIGHTED = frozenset({
    "Convolution", "GroupConvolution", "ConvolutionBackpropData", "GroupConvolutionBackpropData", "MatMul",
})
"""Ops with a weight input: FQs on the activation input(s) and a per-output-channel FQ on
constant weights. A bias/scale chain after them is a
fused pattern (:data:`LINEAR_TAIL`)."""

CONV_LIKE = WEIGHTED - {"MatMul"}
"""The convolutions among :data:`WEIGHTED` (weights always on port 1)."""

LPT_PRECISION_PRESERVING = frozenset({
    "MaxPool", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "StridedSlice", "Split", "VariadicSplit",
    "Concat", "DepthToSpace", "Gather", "ReduceMax",
})
"""Ops LPT moves dequantization through unchanged: on LPT
targets an FQ may only travel up through these, or the Conv/MatMul falls back to float."""

ELTWISE = frozenset({
    "Add", "Multiply", "Maximum", "Minimum", "Subtract", "Divide", "Less", "LessEqual", "Greater", "GreaterEqual",
    "Equal", "NotEqual", "FloorMod", "LogicalOr", "LogicalXor", "LogicalAnd", "LogicalNot", "SquaredDifference",
})
"""Elementwise ops: quantized on all inputs, and only when at least two inputs are
activations (an eltwise op with a constant operand gains nothing from INT8 and would add a
stray FQ; docs/placement.md "Where"). Their output FQs (GNA) have POT priority 0."""

LINEAR_TAIL = frozenset({"Add", "Subtract", "Multiply", "Divide"})
"""Linear ops that, with a constant operand, fuse into the op before them: bias/scale
chains after a weighted op and preprocessing chains after a Parameter are never quantized
(int8-placement.md §7; NNCF's ``operation_with_bias`` and ``input_preprocessing``)."""

POSTPROCESSING = frozenset({
    "NonMaxSuppression", "MulticlassNms", "MatrixNms", "TopK", "DetectionOutput",
    "ExperimentalDetectronDetectionOutput",
})
"""Detection post-processing: everything feeding these back to the nearest weighted op
stays float (NNCF's ``postprocessing_nms_topk``; docs/placement.md "Never quantized")."""

TRANSFORMER_IGNORED = frozenset({
    "Add", "Power", "Squeeze", "Subtract", "AvgPool", "ReduceMean", "ReduceL2", "ReduceSum", "SquaredDifference",
    "MVN", "GroupNormalization", "BatchNormInference", "Divide", "Sqrt", "Maximum", "Less", "LessEqual", "Greater",
    "GreaterEqual", "Equal", "NotEqual", "Multiply",
})
"""``model_type="transformer"``: the op types NNCF (a superset of POT's list) keeps in
float. The descriptor rule ``transformer_quantize_multiply``
(CPU_SPR) takes Multiply out."""

FLOAT_PRECISIONS = frozenset({None, "FP32", "FP16", "BF16", "FP64"})
"""Port precisions that count as float (``None``: not inferred yet)."""

RECURRENT_PORTS: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "LSTMSequence": ((0, 1), (4, 5)),
    "GRUSequence": ((0, 1), (3, 4)),
    "RNNSequence": ((0, 1), (3, 4)),
    "LSTMCell": ((0, 1), (3, 4)),
    "GRUCell": ((0, 1), (2, 3)),
    "RNNCell": ((0, 1), (2, 3)),
}
"""Recurrent ops: ``((X, H), (W, R))`` input ports. LPT quantizes ports 0 and 1; the
sequence lengths stay integer."""

LSTM_CELL_STATE_PORT = 2
"""The initial cell state C of LSTMSequence/LSTMCell: quantized with its own per-tensor
range when it is an activation, as NNCF does (its graph builder treats every float
non-constant input of the op as an activation to quantize)."""

CPU_INT8_RECURRENT = frozenset({"LSTMSequence", "GRUSequence"})
"""Recurrent ops the CPU plugin runs in INT8 (``RNNSeq u8``, ``ref_any_I8``); they
count as quantized ops on LPT targets. RNNSequence and the cells stay f32 even with FQs,
so they are not audited."""

ATTENTION_PORTS: dict[str, tuple[int, ...]] = {"ScaledDotProductAttention": (0, 1)}
"""Ops with activation-only rules whose quantized inputs are fixed ports: SDPA query and
key, both or none (NNCF CPU setup)."""

PER_CHANNEL_PRESERVING = frozenset({"MaxPool"})
"""A per-channel activation quantizer keeps its channel axis only through these (a
Reshape/Transpose/Concat would scramble or mix the axis)."""
