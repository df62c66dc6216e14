"""FakeQuantize placement: plan on a frozen mirror, then apply typed commands.

:func:`plan_placement` reads a graph (never edits it) and a hardware descriptor and
returns a :class:`PlacementPlan`: a list of :class:`QuantizeActivation` and
:class:`QuantizeWeight` commands. :func:`apply_plan` inserts one FakeQuantize-1 per
command (five inputs ``x, il, ih, ol, oh``, ``auto_broadcast="numpy"``), named like
NNCF (``<producer>/fq_output_<port>``, ``<op>/fq_weights_<port>``).
:func:`fill_ranges_minmax` sets activation ranges from a min/max over samples run on
the FP model through the real OpenVINO runtime.

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
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ovq.errors import OvqError
from ovq.hw import HardwareDescriptor, QuantSpace, load_descriptor
from ovq.ir.graph import Graph, Port
from ovq.quantization.ignored_scope import IgnoredScope, as_ignored_scope

log = logging.getLogger("ovq.quantization")

META_KEY = "ovq.quantizers"

PRESETS = ("performance", "mixed", "accuracy")
MODEL_TYPES = ("transformer",)

WEIGHTED = {"Convolution", "GroupConvolution", "ConvolutionBackpropData", "GroupConvolutionBackpropData", "MatMul"}
CONV_LIKE = WEIGHTED - {"MatMul"}
# Ops LPT moves dequantization through unchanged (int8-placement.md §3, §6.1): on LPT
# targets an FQ may only travel up through these, or the Conv/MatMul falls back.
LPT_PRECISION_PRESERVING = {
    "MaxPool", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "StridedSlice", "Split", "VariadicSplit",
    "Concat", "DepthToSpace", "Gather", "ReduceMax",
}
LPT_TARGETS = {"any", "cpu", "cpu_spr", "gpu"}
ELTWISE = {
    "Add", "Multiply", "Maximum", "Minimum", "Subtract", "Divide", "Less", "LessEqual", "Greater", "GreaterEqual",
    "Equal", "NotEqual", "FloorMod", "LogicalOr", "LogicalXor", "LogicalAnd", "LogicalNot", "SquaredDifference",
}
LINEAR_TAIL = {"Add", "Subtract", "Multiply", "Divide"}
POSTPROCESSING = {
    "NonMaxSuppression", "MulticlassNms", "MatrixNms", "TopK", "DetectionOutput", "ExperimentalDetectronDetectionOutput",
}
# model_type="transformer": the op types NNCF (a superset of POT's list) keeps in float.
TRANSFORMER_IGNORED = {
    "Add", "Power", "Squeeze", "Subtract", "AvgPool", "ReduceMean", "ReduceL2", "ReduceSum", "SquaredDifference",
    "MVN", "GroupNormalization", "BatchNormInference", "Divide", "Sqrt", "Maximum", "Less", "LessEqual", "Greater",
    "GreaterEqual", "Equal", "NotEqual", "Multiply",
}
FLOAT_PRECISIONS = {None, "FP32", "FP16", "BF16", "FP64"}


class PlacementError(OvqError):
    """Bad placement options (unknown preset or model type) or an unplaceable model."""


@dataclass(frozen=True)
class QConfig:
    """A resolved quantizer configuration: integer grid and mode of one FQ."""

    space: str
    bits: int
    mode: str
    level_low: int
    level_high: int

    @property
    def levels(self) -> int:
        """FakeQuantize ``levels``."""
        return self.level_high - self.level_low + 1


@dataclass(frozen=True)
class QuantizeActivation:
    """Insert one FQ on output ``out_index`` of ``producer``, read by ``consumers``."""

    producer: int
    out_index: int
    consumers: tuple[tuple[int, int], ...]
    config: QConfig
    group: str = "activations"
    unified: int | None = None


@dataclass(frozen=True, eq=False)
class QuantizeWeight:
    """Insert one FQ between the constant weight ``source`` and input ``input_index`` of ``op``.

    ``input_low``/``input_high`` are already shaped for broadcasting (per output channel).
    """

    op: int
    input_index: int
    source: tuple[int, int]
    config: QConfig
    input_low: np.ndarray
    input_high: np.ndarray


@dataclass
class PlacementPlan:
    """What :func:`plan_placement` decided."""

    activations: list[QuantizeActivation] = field(default_factory=list)
    weights: list[QuantizeWeight] = field(default_factory=list)
    quantized_ops: list[int] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Req:
    config: QConfig
    groups: frozenset[int] = frozenset()
    kind: str = "activations"


# ---------------------------------------------------------------- descriptor helpers
def _expand(spaces: Sequence[QuantSpace], *, weights: bool) -> list[QConfig]:
    out = []
    for s in spaces:
        for mode in s.modes:
            low, high = s.grid(weights=weights, mode=mode)
            out.append(QConfig(s.name, s.bits, mode, low, high))
    return out


def _effective_preset(preset: str, hw: HardwareDescriptor) -> str:
    target = hw.target.lower()
    if target.startswith("gna") and preset == "mixed":
        return "accuracy"
    if target in LPT_TARGETS and preset == "accuracy":
        return "mixed"
    return preset


def _pick(configs: list[QConfig], preset: str, *, weights: bool, force_symmetric: bool = False) -> QConfig | None:
    if force_symmetric:
        configs = [c for c in configs if c.mode == "symmetric"] or configs
    if not configs:
        return None
    if weights:
        return configs[-1] if preset == "accuracy" else configs[0]
    return configs[0] if preset == "performance" else configs[-1]


def _merge_configs(configs: Iterable[QConfig], primary_bits: int) -> QConfig:
    uniq = list(dict.fromkeys(configs))
    if len(uniq) == 1:
        return uniq[0]
    return min(uniq, key=lambda c: (c.bits != primary_bits, c.bits, c.mode != "symmetric"))


# -------------------------------------------------------------------- graph helpers
class _View:
    """Read-only facts about a graph used while planning."""

    def __init__(self, graph: Graph) -> None:
        self.g = graph
        self.order = graph.topological_order()
        self.const: dict[int, bool] = {}
        for n in self.order:
            op = graph.op(n)
            ins = graph.inputs_of(n)
            self.const[n] = op.type == "Const" or (
                bool(ins) and op.type not in ("Parameter", "ReadValue") and all(p is not None and self.const[p[0]] for p in ins)
            )

    def type(self, n: int) -> str:
        return self.g.op(n).ov_type

    def is_const_input(self, n: int, i: int) -> bool:
        p = self.g.producer(n, i)
        return p is not None and self.const[p[0]]

    def is_float(self, n: int, out: int) -> bool:
        port = self.g.op(n).outputs[out]
        return port.precision in FLOAT_PRECISIONS

    def weight_shape(self, n: int, i: int) -> list[int] | None:
        p = self.g.producer(n, i)
        if p is None:
            return None
        return self.g.op(p[0]).outputs[p[1]].shape


def _hw_type(view: _View, hw: HardwareDescriptor, n: int) -> str:
    t = view.type(n)
    if t == "GroupConvolution" and hw.rule_for("GroupConvolution") is None:
        shape = view.weight_shape(n, 1)
        if shape and len(shape) >= 3 and shape[1] == 1 and shape[2] == 1 and hw.rule_for("DepthWiseConvolution"):
            return "DepthWiseConvolution"
        return "Convolution"
    return t


def _weight_source(view: _View, n: int, i: int) -> tuple[tuple[int, int], np.ndarray] | str:
    """The tensor to put a weight FQ on and its float value, or why not."""
    g = view.g
    p = g.producer(n, i)
    if p is None:
        return "weight input unconnected"
    op = g.op(p[0])
    if op.type == "Const":
        value = g.const_value(p[0])
        if value.dtype.kind != "f":
            return "weights are not float"
        return p, value.astype(np.float32)
    if op.type == "Convert":
        q = g.producer(p[0], 0)
        if q is not None and g.op(q[0]).type == "Const":
            value = g.const_value(q[0])
            if value.dtype.kind == "f":  # f16 storage decompressed to f32
                return p, value.astype(np.float32)
    if op.type == "FakeQuantize":
        return "weights already quantized"
    if view.const[p[0]]:
        return "weights are a constant subgraph, not a Const (run fold-constants first)"
    return "weights are not constant"


def _weight_axes(view: _View, n: int, i: int, rank: int) -> tuple[int, ...]:
    t = view.type(n)
    attrs = view.g.op(n).attrs or {}
    if t == "Convolution":
        return (0,)
    if t == "GroupConvolution":
        return (0, 1)
    if t == "ConvolutionBackpropData":
        return (1,)
    if t == "GroupConvolutionBackpropData":
        return (0, 2)
    if t == "MatMul":
        if rank < 2:
            return ()
        if i == 1:
            return (rank - 2,) if attrs.get("transpose_b") == "true" else (rank - 1,)
        return (rank - 1,) if attrs.get("transpose_a") == "true" else (rank - 2,)
    return (0,)


def weight_range(w: np.ndarray, axes: tuple[int, ...], config: QConfig, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric or asymmetric weight FQ range, per output channel (``axes``) or per tensor."""
    from ovq.kernels import get_kernels

    k = get_kernels()
    shape = [1] * w.ndim
    if per_channel and axes:
        rest = [a for a in range(w.ndim) if a not in axes]
        moved = np.transpose(w, (*axes, *rest))
        channels = int(np.prod([w.shape[a] for a in axes]))
        flat = np.ascontiguousarray(moved.reshape(channels, -1))
        lo, hi = k.weight_ranges(flat, levels=config.levels, mode=config.mode, axis=0, signed=True)
        for a in axes:
            shape[a] = w.shape[a]
        return lo.reshape(shape), hi.reshape(shape)
    lo, hi = k.weight_ranges(np.ascontiguousarray(w.reshape(-1)), levels=config.levels, mode=config.mode,
                             axis=None, signed=True)
    return np.asarray(lo, np.float32).reshape(shape), np.asarray(hi, np.float32).reshape(shape)


def _fused_ops(view: _View) -> set[int]:
    """Ops inside hardware-fused patterns or post-processing: never quantized."""
    g = view.g
    fused: set[int] = set()

    def linear_tail(start: int) -> None:
        node = start
        while True:
            cons = g.consumers(node, 0)
            if len(cons) != 1:
                return
            nxt, _ = cons[0]
            t = view.type(nxt)
            if t == "BatchNormInference" or (
                t in LINEAR_TAIL and any(view.is_const_input(nxt, j) for j in range(len(g.op(nxt).inputs)))
            ):
                fused.add(nxt)
                node = nxt
                continue
            return

    for n in view.order:
        t = view.type(n)
        if t in WEIGHTED:
            linear_tail(n)
        elif t == "Parameter":
            # Embedded preprocessing: Parameter -> [Convert] -> const Sub/Mul/Add/Div chain.
            node = n
            while True:
                cons = g.consumers(node, 0)
                if len(cons) != 1:
                    break
                nxt, _ = cons[0]
                nt = view.type(nxt)
                if nt == "Convert" or (
                    nt in LINEAR_TAIL and any(view.is_const_input(nxt, j) for j in range(len(g.op(nxt).inputs)))
                ):
                    fused.add(nxt)
                    node = nxt
                    continue
                break
        if t in POSTPROCESSING:
            stack = [n]
            while stack:
                cur = stack.pop()
                if cur in fused:
                    continue
                fused.add(cur)
                for p in g.inputs_of(cur):
                    if p is not None and not view.const[p[0]] and view.type(p[0]) not in WEIGHTED:
                        stack.append(p[0])
    return fused


# --------------------------------------------------------------------------- planner
def plan_placement(
    graph: Graph,
    target: str | HardwareDescriptor = "ANY",
    *,
    preset: str | None = None,
    model_type: str | None = None,
    ignored_scope: IgnoredScope | dict | None = None,
    strict: bool = False,
) -> PlacementPlan:
    """Decide where FakeQuantize ops go; the graph is not changed.

    Port precisions should be known (``graph.infer_shapes()``); unknown ones count as float.

    Raises:
        PlacementError: unknown preset or model type.
        IgnoredScopeError: strict mode and an ignored-scope entry matches nothing.
    """
    hw = load_descriptor(target)
    if model_type is not None and model_type not in MODEL_TYPES:
        raise PlacementError(f"unknown model_type {model_type!r}; valid: {', '.join(MODEL_TYPES)} or None")
    if preset is None:
        preset = "mixed" if model_type == "transformer" else "performance"
    if preset not in PRESETS:
        raise PlacementError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
    preset = _effective_preset(preset, hw)
    lpt = hw.target.lower() in LPT_TARGETS

    view = _View(graph)
    g = view.g
    ignored = as_ignored_scope(ignored_scope).resolve(graph, strict=strict)
    if model_type == "transformer":
        ignored |= {n for n in view.order if view.type(n) in TRANSFORMER_IGNORED}
    fused = _fused_ops(view)
    plan = PlacementPlan()

    edge_reqs: dict[tuple[int, int], _Req] = {}
    tensor_reqs: dict[tuple[int, int], _Req] = {}

    def skip(n: int, why: str) -> None:
        plan.skipped.append((g.op(n).name, why))

    def act_input_ok(n: int, i: int) -> bool:
        p = g.producer(n, i)
        return p is not None and not view.const[p[0]] and view.is_float(*p) and g.op(p[0]).type != "FakeQuantize"

    for n in view.order:
        if n in ignored or n in fused:
            continue
        hwt = _hw_type(view, hw, n)
        rule = hw.rule_for(hwt) or (hw.rule_for("Convolution") if hwt == "DepthWiseConvolution" else None)
        if rule is None or not (rule.activations or rule.outputs):
            continue
        t = view.type(n)
        n_in = len(g.op(n).inputs)
        act_ports: list[int] = []
        weight_ports: list[int] = []
        if t in WEIGHTED:
            ports = (0, 1) if t == "MatMul" else (0,)
            for i in ports:
                if view.is_const_input(n, i):
                    weight_ports.append(i)
                elif act_input_ok(n, i):
                    act_ports.append(i)
            if t != "MatMul":
                if view.is_const_input(n, 1):
                    weight_ports.append(1)
                else:
                    skip(n, "weights are not constant")
                    continue
            if not act_ports:
                skip(n, "no activation input to quantize")
                continue
        elif t in ELTWISE:
            act_ports = [i for i in range(n_in) if act_input_ok(n, i)]
            if len(act_ports) < 2:
                act_ports = []
        elif n_in and rule.activations:
            act_ports = [0] if act_input_ok(n, 0) else []
        if t == "MatMul":
            for i in act_ports:  # softmax(-> reshape) -> MatMul: kept float (POT ignored pattern)
                p = g.producer(n, i)
                while p is not None and view.type(p[0]) in ("Reshape", "Transpose"):
                    p = g.producer(p[0], 0)
                if p is not None and view.type(p[0]) == "Softmax" and model_type != "transformer":
                    act_ports = []
        weights_planned: list[QuantizeWeight] = []
        if t in WEIGHTED and rule.weights:
            wcfg = _pick(_expand(rule.weights, weights=True), preset, weights=True)
            per_channel = wcfg is not None and hw.spaces[wcfg.space].granularities[0] == "perchannel"
            ok = True
            for i in weight_ports:
                src = _weight_source(view, n, i)
                if isinstance(src, str):
                    skip(n, src)
                    ok = False
                    break
                (source, value) = src
                axes = _weight_axes(view, n, i, value.ndim)
                lo, hi = weight_range(value, axes, wcfg, per_channel)
                weights_planned.append(QuantizeWeight(n, i, source, wcfg, lo, hi))
            if not ok:
                continue
        if rule.activations and act_ports:
            configs = _expand(rule.activations, weights=False)
            both_act = t == "MatMul" and len(act_ports) == 2
            cfg = _pick(configs, preset, weights=False, force_symmetric=both_act and model_type == "transformer")
            for i in act_ports:
                edge_reqs[(n, i)] = _Req(cfg)
        if weights_planned or (t in WEIGHTED and act_ports):
            plan.weights.extend(weights_planned)
            if t in WEIGHTED and act_ports:
                plan.quantized_ops.append(n)
        if rule.outputs:
            ocfg = _pick(_expand(rule.outputs, weights=False), preset, weights=False)
            out_node = n
            if t in WEIGHTED:
                cons = g.consumers(n, 0)
                if len(cons) == 1 and view.type(cons[0][0]) == "Add" and cons[0][0] in fused:
                    out_node = cons[0][0]
            if g.op(out_node).outputs and view.is_float(out_node, 0):
                value_cons = [c for c in g.consumers(out_node, 0) if view.type(c[0]) != "ShapeOf"]
                if t == "Parameter" and value_cons and all(c[0] in fused for c in value_cons):
                    pass  # the FQ after a Parameter feeding preprocessing is dropped
                elif value_cons:
                    tensor_reqs[(out_node, 0)] = _Req(ocfg, kind="outputs")

    # Walk producers-last: finalize each tensor once every consumer has been seen.
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    def union(groups: Iterable[int]) -> frozenset[int]:
        gs = [find(x) for x in groups]
        if not gs:
            return frozenset()
        root = gs[0]
        for other in gs[1:]:
            if other != root:
                parent[other] = root
        return frozenset({root})

    next_group = 0
    for n in reversed(view.order):
        op = g.op(n)
        for o in range(len(op.outputs)):
            value_cons = [c for c in g.consumers(n, o) if view.type(c[0]) != "ShapeOf"]
            reqd = [c for c in value_cons if c in edge_reqs]
            treq = tensor_reqs.get((n, o))
            if not reqd and treq is None:
                continue
            reqs = [edge_reqs[c] for c in reqd] + ([treq] if treq else [])
            if treq is not None or len(reqd) == len(value_cons):
                merged = _Req(
                    _merge_configs((r.config for r in reqs), hw.primary_bitwidth),
                    union(x for r in reqs for x in r.groups),
                    "outputs" if treq is not None and all(r.kind == "outputs" for r in reqs) else "activations",
                )
                targets = _propagation_targets(view, hw, n, o, ignored, fused, lpt)
                if targets:
                    if len(targets) > 1 and op.ov_type == "Concat":
                        merged.groups = union([*merged.groups, next_group]) if merged.groups else frozenset({next_group})
                        parent.setdefault(next_group, next_group)
                        next_group += 1
                    for i in targets:
                        edge_reqs[(n, i)] = _Req(merged.config, merged.groups, merged.kind)
                    continue
                plan.activations.append(QuantizeActivation(n, o, tuple(value_cons), merged.config, merged.kind,
                                                           min(merged.groups) if merged.groups else None))
            else:
                by_cfg: dict[QConfig, list[tuple[int, int]]] = {}
                for c in reqd:
                    by_cfg.setdefault(edge_reqs[c].config, []).append(c)
                for cfg, cons in by_cfg.items():
                    groups = union(x for c in cons for x in edge_reqs[c].groups)
                    plan.activations.append(QuantizeActivation(n, o, tuple(cons), cfg, "activations",
                                                               min(groups) if groups else None))
    # Group ids were unioned after some commands were made: canonicalize.
    plan.activations = [
        QuantizeActivation(a.producer, a.out_index, a.consumers, a.config, a.group,
                           None if a.unified is None else find(a.unified))
        for a in reversed(plan.activations)
    ]
    counts: dict[int, int] = {}
    for a in plan.activations:
        if a.unified is not None:
            counts[a.unified] = counts.get(a.unified, 0) + 1
    plan.activations = [
        a if a.unified is None or counts[a.unified] > 1
        else QuantizeActivation(a.producer, a.out_index, a.consumers, a.config, a.group, None)
        for a in plan.activations
    ]
    return plan


def _propagation_targets(view: _View, hw: HardwareDescriptor, n: int, o: int, ignored: set[int], fused: set[int],
                         lpt: bool) -> list[int]:
    """Inputs of ``n`` a quantizer on its whole output may move to (empty: stay here)."""
    g = view.g
    op = g.op(n)
    t = op.ov_type
    if n in ignored or n in fused or not hw.is_agnostic(t):
        return []
    # Multi-output ops (MaxPool-8 values + indices) only when the other outputs are unused.
    if o != 0 or any(g.consumers(n, k) for k in range(1, len(op.outputs))):
        return []
    if lpt and t not in LPT_PRECISION_PRESERVING:
        return []
    inputs = g.inputs_of(n)
    if t == "Concat":
        if all(p is not None and not view.const[p[0]] and view.is_float(*p) for p in inputs):
            return list(range(len(inputs)))
        return []
    if not inputs or inputs[0] is None or view.const[inputs[0][0]] or not view.is_float(*inputs[0]):
        return []
    if any(p is None or not view.const[p[0]] for p in inputs[1:]):
        return []
    return [0]


# --------------------------------------------------------------------------- applier
def _port_like(graph: Graph, node: int, out: int) -> Port:
    src = graph.op(node).outputs[out]
    return Port(id=0, precision=src.precision, shape=None if src.shape is None else list(src.shape))


def _unique(graph: Graph, base: str, taken: set[str]) -> str:
    name, k = base, 1
    while name in taken:
        name = f"{base}_{k}"
        k += 1
    taken.add(name)
    return name


def _insert_fq(graph: Graph, name: str, src: tuple[int, int], consumers: Sequence[tuple[int, int]], levels: int,
               lo: np.ndarray, hi: np.ndarray) -> int:
    fq = graph.add_op("FakeQuantize", name, version="opset1", attrs={"levels": levels, "auto_broadcast": "numpy"},
                      num_inputs=5, outputs=[_port_like(graph, *src)])
    for dst, i in consumers:
        graph.disconnect(dst, i)
        graph.connect(fq, 0, dst, i)
    graph.connect(src[0], src[1], fq, 0)
    for k, (suffix, value) in enumerate((("input_low", lo), ("input_high", hi), ("output_low", lo),
                                         ("output_high", hi)), start=1):
        c = graph.add_const(np.asarray(value, np.float32), f"{name}/{suffix}")
        graph.connect(c, 0, fq, k)
    return fq


def apply_plan(graph: Graph, plan: PlacementPlan) -> dict[str, dict[str, Any]]:
    """Insert the planned FakeQuantize ops; return (and store in ``graph.meta``) their metadata.

    Activation FQs start with the placeholder range ``[0, 1]`` until
    :func:`fill_ranges_minmax` sets them.
    """
    taken = {op.name for _n, op in graph.ops()}
    meta: dict[str, dict[str, Any]] = graph.meta.setdefault(META_KEY, {})
    for w in plan.weights:
        name = _unique(graph, f"{graph.op(w.op).name}/fq_weights_{w.input_index}", taken)
        node = _insert_fq(graph, name, w.source, [(w.op, w.input_index)], w.config.levels, w.input_low, w.input_high)
        meta[name] = {"node": node, "kind": "weights", "mode": w.config.mode, "levels": w.config.levels,
                      "space": w.config.space, "op": graph.op(w.op).name}
    for a in plan.activations:
        name = _unique(graph, f"{graph.op(a.producer).name}/fq_output_{a.out_index}", taken)
        node = _insert_fq(graph, name, (a.producer, a.out_index), a.consumers, a.config.levels,
                          np.float32(0.0), np.float32(1.0))
        meta[name] = {"node": node, "kind": a.group, "mode": a.config.mode, "levels": a.config.levels,
                      "level_low": a.config.level_low, "level_high": a.config.level_high,
                      "space": a.config.space, "unified": a.unified}
    return meta


# ---------------------------------------------------------------------------- ranges
def activation_range(mn: float, mx: float, *, mode: str, levels: int, level_low: int, level_high: int) -> tuple[float, float]:
    """FQ range of an activation with observed ``[mn, mx]`` (quantization-algorithms.md §5)."""
    from ovq.kernels.api import tune_range

    if mode == "symmetric":
        h = max(abs(mn), abs(mx), 1e-8)
        if mn >= 0:
            return 0.0, h
        return h * level_low / level_high, h
    lo, hi = float(mn), float(mx)
    if hi - lo <= 8e-4:
        lo, hi = lo - 8e-4, hi + 8e-4
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    tl, th = tune_range(np.array(lo), np.array(hi), levels)
    return float(tl), float(th)


def _as_infer_input(sample: Any) -> Any:
    if isinstance(sample, np.ndarray):
        return [sample]
    return sample


def collect_minmax(graph: Graph, tensors: Sequence[tuple[int, int]], samples: Iterable[Any],
                   bypass: Iterable[int] = ()) -> list[tuple[float, float]]:
    """Global min and max of each ``(node, out)`` tensor of the FP model over ``samples``.

    The FQ nodes in ``bypass`` are removed from a private copy first, so statistics come
    from the floating-point model. Inference runs on CPU at the f32 hint.
    """
    from ovq.kernels import get_kernels
    from ovq.runtime import compile_model

    k = get_kernels()
    g2 = graph.copy()
    for fq in bypass:
        src = g2.producer(fq, 0)
        g2.replace_output(fq, 0, src[0], src[1], move_names=True)
        consts = [g2.producer(fq, i) for i in range(1, 5)]
        g2.remove_node(fq)
        for p in consts:
            if p is not None and g2.op(p[0]).type == "Const" and not g2.consumers(p[0], p[1]):
                g2.remove_node(p[0])
    names = []
    for idx, (node, out) in enumerate(dict.fromkeys(tensors)):
        tname = f"__ovq_stat_{idx}"
        g2.op(node).outputs[out].names.append(tname)
        r = g2.add_op("Result", tname, num_inputs=1, outputs=0)
        g2.connect(node, out, r, 0)
        names.append(((node, out), tname))
    compiled = compile_model(g2)
    request = compiled.create_infer_request()
    stats: dict[tuple[int, int], list[float]] = {}
    count = 0
    for sample in samples:
        count += 1
        result = request.infer(_as_infer_input(sample))
        for key, tname in names:
            arr = np.asarray(result[compiled.output(tname)], np.float32)
            mn, mx = (float(v) for v in k.minmax(arr, name=tname))
            cur = stats.get(key)
            stats[key] = [mn, mx] if cur is None else [min(cur[0], mn), max(cur[1], mx)]
    if not count:
        raise PlacementError("no calibration samples given")
    return [tuple(stats[t]) for t in tensors]


def fill_ranges_minmax(graph: Graph, samples: Iterable[Any]) -> int:
    """Set the range of every ovq activation FQ from a min/max over ``samples``.

    ``samples``: items ``infer`` accepts (a dict by input name, a list, or one array).
    Members of a unified group share min of mins / max of maxes. Returns the number of
    FakeQuantize ops set.
    """
    meta: dict[str, dict[str, Any]] = graph.meta.get(META_KEY, {})
    acts = {name: m for name, m in meta.items() if m["kind"] != "weights" and m["node"] in graph}
    if not acts:
        return 0
    all_fq = [m["node"] for m in meta.values() if m["node"] in graph]
    srcs = [graph.producer(m["node"], 0) for m in acts.values()]
    ranges = collect_minmax(graph, srcs, samples, bypass=all_fq)
    observed = dict(zip(acts, ranges, strict=True))
    unified: dict[int, tuple[float, float]] = {}
    for name, m in acts.items():
        if m.get("unified") is not None:
            mn, mx = observed[name]
            cur = unified.get(m["unified"])
            unified[m["unified"]] = (mn, mx) if cur is None else (min(cur[0], mn), max(cur[1], mx))
    for name, m in acts.items():
        mn, mx = unified[m["unified"]] if m.get("unified") is not None else observed[name]
        lo, hi = activation_range(mn, mx, mode=m["mode"], levels=m["levels"], level_low=m["level_low"],
                                  level_high=m["level_high"])
        fq = m["node"]
        for i, value in ((1, lo), (2, hi), (3, lo), (4, hi)):
            graph.set_const_value(graph.producer(fq, i)[0], np.asarray(value, np.float32))
    return len(acts)
