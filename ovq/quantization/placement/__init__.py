"""FakeQuantize placement: plan on a frozen mirror, then apply typed commands.

:func:`plan_placement` reads a graph (never edits it) and a hardware descriptor and
returns a :class:`PlacementPlan`: a list of :class:`QuantizeActivation` and
:class:`QuantizeWeight` commands. :func:`apply_plan` inserts one FakeQuantize-1 per
command (five inputs ``x, il, ih, ol, oh``, ``auto_broadcast="numpy"``), named like
NNCF (``<producer>/fq_output_<port>``, ``<op>/fq_weights_<port>``).

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
  miscomputes on the CPU plugin) and the X/H range covers the hidden state (-1, 1);
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
recurrent W/R), ``range_include`` for recurrent X/H groups (range estimators widen the
observed range to contain (-1, 1) before unifying the group), and its range once known.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np

from ovq.hw import HardwareDescriptor, load_descriptor
from ovq.ir.graph import Graph
from ovq.quantization.ignored_scope import IgnoredScope, as_ignored_scope, match_ignored_patterns
from ovq.quantization.placement.apply import apply_plan
from ovq.quantization.placement.commands import PlacementError, PlacementPlan, QuantizeActivation, QuantizeWeight
from ovq.quantization.placement.configs import Request, expand, merge_requests, per_tensor, pick
from ovq.quantization.placement.fused import fused_ops
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
from ovq.quantization.placement.view import GraphView, hw_type
from ovq.quantization.placement.weights import WeightSkip, weight_axes, weight_source
from ovq.quantization.ranges import weight_range
from ovq.quantization.records import QConfig

log = logging.getLogger("ovq.quantization")


PRESETS = ("performance", "mixed", "accuracy")
MODEL_TYPES = ("transformer",)



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
    preset = hw.effective_preset(preset)
    lpt = hw.low_precision_transformations
    single_fq_add = "single_fq_add" in hw.placement_rules

    view = GraphView(graph)
    g = view.g
    ignored = as_ignored_scope(ignored_scope).resolve(graph, strict=strict)
    if model_type == "transformer":
        transformer_ignored = TRANSFORMER_IGNORED
        if "transformer_quantize_multiply" in hw.placement_rules:
            transformer_ignored = transformer_ignored - {"Multiply"}
        ignored |= {n for n in view.order if view.type(n) in transformer_ignored}
    fused = fused_ops(view)
    patterns = match_ignored_patterns(graph, hw.ignored_patterns, view.const, model_type)
    for name, nodes in patterns.items():
        log.debug("ignored pattern %s: %d ops kept float", name, len(nodes))
        fused |= nodes
    plan = PlacementPlan()
    plan.ignored_patterns = {name: sorted(g.op(n).name for n in nodes) for name, nodes in patterns.items()}

    edge_reqs: dict[tuple[int, int], Request] = {}
    tensor_reqs: dict[tuple[int, int], Request] = {}

    # Unified-scale groups: a union-find over integer ids shared by activations and weights.
    parent: dict[int, int] = {}
    counter = [0]
    recurrent_groups: list[int] = []

    def new_group() -> int:
        gid = counter[0]
        counter[0] += 1
        parent[gid] = gid
        return gid

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

    def skip(n: int, why: str) -> None:
        plan.skipped.append((g.op(n).name, why))

    act_input_ok = view.is_activation_input
    input_rank = view.input_rank

    for n in view.order:
        if n in ignored or n in fused:
            continue
        hwt = hw_type(view, hw, n)
        rule = hw.rule_for(hwt) or (hw.rule_for("Convolution") if hwt == "DepthWiseConvolution" else None)
        if hwt == "Embedding" and rule is not None and rule.weights:
            _plan_embedding(view, rule, n, preset, plan, skip)
            continue
        if rule is None or not (rule.activations or rule.outputs):
            continue
        t = view.type(n)
        n_in = len(g.op(n).inputs)
        priority = 2 if hwt in hw.input_priority_types or t in hw.input_priority_types else 1
        if t in RECURRENT_PORTS:
            gid = _plan_recurrent(view, hw, rule, n, preset, lpt, plan, edge_reqs, act_input_ok, skip, new_group)
            if gid is not None:
                recurrent_groups.append(gid)
            continue
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
                    skip(n, WeightSkip.NOT_CONSTANT.message)
                    continue
            if not act_ports:
                skip(n, "no activation input to quantize")
                continue
        elif t in ATTENTION_PORTS:
            act_ports = [i for i in ATTENTION_PORTS[t] if i < n_in and act_input_ok(n, i)]
            if len(act_ports) < len(ATTENTION_PORTS[t]):
                if act_ports:  # one quantized input gains nothing: the Q x K^T MatMul stays float
                    skip(n, "not every attention input is a float activation")
                act_ports = []
        elif t in ELTWISE:
            act_ports = [i for i in range(n_in) if act_input_ok(n, i)]
            if len(act_ports) < 2:
                act_ports = []
            elif single_fq_add and t == "Add" and len(act_ports) == 2:
                act_ports = _single_fq_add_port(view, n, act_ports)
        elif n_in and rule.activations:
            act_ports = [0] if act_input_ok(n, 0) else []
        weights_planned: list[QuantizeWeight] = []
        if t in WEIGHTED and rule.weights:
            wcfg = pick(expand(rule.weights, weights=True), preset, weights=True)
            per_channel = wcfg is not None and wcfg.granularity == "perchannel"
            ok = True
            for i in weight_ports:
                src = weight_source(view, n, i)
                if isinstance(src, WeightSkip):
                    skip(n, src.message)
                    ok = False
                    break
                source, value = src.port, src.value
                axes = weight_axes(view, n, i, value.ndim)
                lo, hi = weight_range(value, axes, wcfg, per_channel)
                weights_planned.append(QuantizeWeight(n, i, source, wcfg, lo, hi,
                                                      axes=axes if per_channel else ()))
            if not ok:
                continue
        if rule.activations and act_ports:
            configs = expand(rule.activations, weights=False)
            both_act = t == "MatMul" and len(act_ports) == 2
            cfg = pick(configs, preset, weights=False, force_symmetric=both_act and model_type == "transformer")
            for i in act_ports:
                axis = None
                if cfg.granularity == "perchannel":
                    rank = input_rank(n, i)
                    axis = 1 if rank is not None and rank >= 2 else None
                edge_reqs[(n, i)] = Request(cfg if axis is not None else per_tensor(cfg), priority=priority, axis=axis)
        if weights_planned or (t in WEIGHTED and act_ports):
            plan.weights.extend(weights_planned)
            if t in WEIGHTED and act_ports:
                plan.quantized_ops.append(n)
        if rule.outputs:
            ocfg = pick(expand(rule.outputs, weights=False), preset, weights=False)
            # POT: output FQs of activation functions and Parameters have priority 1, others 0.
            opriority = 1 if t == "Parameter" or not (rule.weights or t in ELTWISE) else 0
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
                    tensor_reqs[(out_node, 0)] = Request(per_tensor(ocfg), kind="outputs", priority=opriority)
    if lpt:
        plan.quantized_ops.extend(w.op for w in plan.weights
                                  if view.type(w.op) in CPU_INT8_RECURRENT and w.op not in plan.quantized_ops)

    # Walk producers-last: finalize each tensor once every consumer has been seen.
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
                merged = merge_requests(reqs, hw.primary_bitwidth, union(x for r in reqs for x in r.groups))
                targets = _propagation_targets(view, hw, n, o, ignored, fused, lpt, merged)
                if targets:
                    if len(targets) > 1 and op.ov_type == "Concat":
                        merged.groups = union([*merged.groups, new_group()])
                    for i in targets:
                        edge_reqs[(n, i)] = Request(merged.config, merged.groups, merged.kind, merged.priority, merged.axis)
                    continue
                plan.activations.append(QuantizeActivation(n, o, tuple(value_cons), merged.config, merged.kind,
                                                           min(merged.groups) if merged.groups else None, merged.axis))
            else:
                by_cfg: dict[tuple[QConfig, int | None], list[tuple[int, int]]] = {}
                for c in reqd:
                    by_cfg.setdefault((edge_reqs[c].config, edge_reqs[c].axis), []).append(c)
                for (cfg, axis), cons in by_cfg.items():
                    groups = union(x for c in cons for x in edge_reqs[c].groups)
                    kind = "outputs" if all(edge_reqs[c].kind == "outputs" for c in cons) else "activations"
                    plan.activations.append(QuantizeActivation(n, o, tuple(cons), cfg, kind,
                                                               min(groups) if groups else None, axis))
    # Group ids were unioned after some commands were made: canonicalize. Recurrent X/H
    # groups must cover the hidden-state range: the CPU plugin requantizes every h_t in
    # (-1, 1) with the X/H scale, so an unsigned range clips it (silero-vad: h error
    # 0.69 -> 0.085 with a signed range) [M].
    rec_roots = {find(x) for x in recurrent_groups}
    plan.activations = [
        QuantizeActivation(a.producer, a.out_index, a.consumers, a.config, a.group,
                           None if a.unified is None else find(a.unified), a.per_channel_axis,
                           (-1.0, 1.0) if a.unified is not None and find(a.unified) in rec_roots else None)
        for a in reversed(plan.activations)
    ]
    counts: dict[int, int] = {}
    for a in plan.activations:
        if a.unified is not None:
            counts[a.unified] = counts.get(a.unified, 0) + 1
    plan.activations = [
        a if a.unified is None or counts[a.unified] > 1
        else QuantizeActivation(a.producer, a.out_index, a.consumers, a.config, a.group, None, a.per_channel_axis,
                                a.range_include)
        for a in plan.activations
    ]
    return plan


def _single_fq_add_port(view: GraphView, n: int, ports: list[int]) -> list[int]:
    """CPU_SPR: keep one input FQ of a two-activation Add (hardware-descriptors.md §5).

    The input whose tensor feeds only this Add loses its quantizer (a branching input
    keeps its FQ for the other consumers anyway); when both feed only the Add, the larger
    tensor goes unquantized; when both branch, both stay.
    """
    g = view.g

    def only_this(i: int) -> bool:
        p = g.producer(n, i)
        return p is not None and [c for c in g.consumers(*p) if view.type(c[0]) != "ShapeOf"] == [(n, i)]

    def size(i: int) -> float:
        p = g.producer(n, i)
        shape = g.op(p[0]).outputs[p[1]].shape if p is not None else None
        return float(np.prod(shape)) if shape and all(isinstance(d, int) and d >= 0 for d in shape) else 0.0

    alone = [i for i in ports if only_this(i)]
    if not alone:
        return ports
    if len(alone) == 1:
        return [i for i in ports if i != alone[0]]
    drop = max(ports, key=lambda i: (size(i), -i))
    return [i for i in ports if i != drop]


def _plan_embedding(view: GraphView, rule: Any, n: int, preset: str, plan: PlacementPlan, skip: Any) -> None:
    """Embedding table (a Gather whose data is a constant): one weight FQ on the table.

    As NNCF's CPU/GPU/NPU setups (``HWOpName.EMBEDDING``, weights only): per table row
    (axis 0 of ``[vocab, hidden]``, NNCF's ``const_channel_axis``) whatever the Gather's
    axis, since the FQ sits on the table before the lookup. The indices and the output
    get nothing here; a quantizer requested downstream of the lookup stays on its output.
    """
    src = weight_source(view, n, 0)
    if isinstance(src, WeightSkip):
        if src is not WeightSkip.NOT_FLOAT:  # an integer table (shapes, ids) is no embedding
            skip(n, f"embedding table: {src.message}")
        return
    source, value = src.port, src.value
    wcfg = pick(expand(rule.weights, weights=True), preset, weights=True)
    if wcfg is None or value.ndim < 1:
        return
    per_channel = wcfg.granularity == "perchannel" and value.ndim >= 2
    lo, hi = weight_range(value, (0,), wcfg, per_channel)
    plan.weights.append(QuantizeWeight(n, 0, source, wcfg, lo, hi, axes=(0,) if per_channel else ()))


def _plan_recurrent(view: GraphView, hw: HardwareDescriptor, rule: Any, n: int, preset: str, lpt: bool,
                    plan: PlacementPlan, edge_reqs: dict[tuple[int, int], Request], act_input_ok: Any, skip: Any,
                    new_group: Any) -> int | None:
    """LSTM/GRU/RNN sequences and cells: X and H activations, W and R weights.

    Ports paired in the descriptor's ``unified_scales`` share one range (the CPU plugin
    feeds [X, H] and [W, R] to one INT8 GEMM: differing X/H scales give wrong results
    [M]). On LPT targets the weights are per tensor: the CPU plugin computes INT8 LSTM
    with per-channel weight FQs wrongly (max error 0.59 vs 0.013 emulated) [M].
    Without a quantized X (and H, unless H is a constant) nothing is placed: weight FQs
    alone make the CPU plugin reject the model (``expects Constant for port 4``).
    Returns the group id of the X/H quantizers (None when nothing was placed).
    """
    g = view.g
    t = view.type(n)
    attrs = g.op(n).attrs or {}
    (x_port, h_port), w_ports = RECURRENT_PORTS[t]
    if t.startswith("GRU") and str(attrs.get("linear_before_reset", "false")).lower() == "true":
        skip(n, "GRU with linear_before_reset (NNCF ignores it; the CPU INT8 LBR GRU does not compile)")
        return None
    if not act_input_ok(n, x_port):
        skip(n, "input X is not a float activation")
        return None
    act_ports = [x_port]
    if act_input_ok(n, h_port):
        act_ports.append(h_port)
    elif not view.is_const_input(n, h_port):
        skip(n, "initial state H is neither a float activation nor a constant")
        return None
    unified = rule.unified_scales
    pairs: list[tuple[int, ...]]
    if unified == "all":
        pairs = [(x_port, h_port), tuple(w_ports)]
    else:
        pairs = [tuple(p) for p in (unified or ())]
    weights: list[tuple[int, tuple[int, int], np.ndarray]] = []
    if rule.weights:
        for i in w_ports:
            if not view.is_const_input(n, i):
                skip(n, WeightSkip.NOT_CONSTANT.message)
                return None
            src = weight_source(view, n, i)
            if isinstance(src, WeightSkip):
                skip(n, src.message)
                return None
            weights.append((i, src.port, src.value))
        wcfg = pick(expand(rule.weights, weights=True), preset, weights=True)
        per_channel = wcfg.granularity == "perchannel" and not lpt
        done: set[int] = set()
        for i, source, value in weights:
            if i in done:
                continue
            members = next((p for p in pairs if i in p and set(p) <= set(w_ports)), (i,))
            group = [(j, s, v) for j, s, v in weights if j in members]
            values = [v for _, _, v in group]
            if len({v.shape[:-1] for v in values}) != 1:
                group, values = [(i, source, value)], [value]
            # [num_directions,] gates*hidden, inputs: channels are every axis but the last.
            axes = tuple(range(values[0].ndim - 1))
            lo, hi = weight_range(np.concatenate(values, axis=-1), axes, wcfg, per_channel)
            gid = new_group() if len(group) > 1 else None
            for j, s, _v in group:
                plan.weights.append(QuantizeWeight(n, j, s, wcfg, lo, hi, gid, axes if per_channel else ()))
                done.add(j)
    cfg = pick(expand(rule.activations, weights=False), preset, weights=False)
    act_pair = next((p for p in pairs if x_port in p), ())
    # One group even for a lone X (H constant): it marks the range that must cover h_t.
    gid = new_group()
    for i in act_ports:
        groups = frozenset({gid}) if i == x_port or i in act_pair else frozenset()
        edge_reqs[(n, i)] = Request(per_tensor(cfg), groups)
    return gid


def _propagation_targets(view: GraphView, hw: HardwareDescriptor, n: int, o: int, ignored: set[int], fused: set[int],
                         lpt: bool, req: Request | None = None) -> list[int]:
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
    if req is not None and req.axis is not None and t not in PER_CHANNEL_PRESERVING:
        return []  # Reshape/Transpose/Concat would scramble or mix the channel axis
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
