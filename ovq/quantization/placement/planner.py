"""The FakeQuantize planner: descriptor rules and a frozen graph view in, typed commands out.

:func:`plan_placement` validates the options and runs one :class:`_Planner`, in three steps:

1. **Requests**, ops in topological order: every op the descriptor quantizes asks for
   activation quantizers on its input edges (``edge_reqs``) or on its output tensor
   (``tensor_reqs``, GNA output FQs) and emits its weight commands directly. Recurrent
   ops and embedding tables have their own rules (:meth:`_Planner._plan_recurrent`,
   :meth:`_Planner._plan_embedding`).
2. **Placement**, producers last: once every consumer of a tensor has been seen, the
   requests on it merge into one quantizer that either moves up to the producer's inputs
   (:meth:`_Planner._propagation_targets`) or becomes a :class:`QuantizeActivation`; a
   tensor only some consumers want quantized gets one FQ per distinct request feeding
   just those.
3. **Groups**: unified-scale group ids are canonicalized to their union-find root; a
   group of one is dropped; recurrent X/H groups get ``hidden_state`` (a signed range).

The graph is never edited (the planner reads it through :class:`GraphView`); the rules
and their reasons are listed in the package docstring and docs/placement.md.
"""

from __future__ import annotations

import logging

import numpy as np

from ovq.hw import HardwareDescriptor, OpRule, load_descriptor
from ovq.ir.graph import Graph
from ovq.quantization.ignored_scope import IgnoredScope, as_ignored_scope, match_ignored_patterns
from ovq.quantization.placement.commands import PlacementError, PlacementPlan, QuantizeActivation, QuantizeWeight
from ovq.quantization.placement.configs import Request, expand, merge_requests, per_tensor, pick
from ovq.quantization.placement.fused import fused_ops
from ovq.quantization.placement.groups import UnifiedGroups
from ovq.quantization.placement.op_tables import (
    ATTENTION_PORTS,
    CPU_INT8_RECURRENT,
    ELTWISE,
    LSTM_CELL_STATE_PORT,
    LPT_PRECISION_PRESERVING,
    PER_CHANNEL_PRESERVING,
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

Edge = tuple[int, int]
"""``(node, input)`` or ``(node, output)``."""


def plan_placement(
    graph: Graph,
    target: str | HardwareDescriptor = "ANY",
    *,
    preset: str | None = None,
    model_type: str | None = None,
    ignored_scope: IgnoredScope | dict | None = None,
    strict: bool = False,
    recurrent: bool = True,
) -> PlacementPlan:
    """Decide where FakeQuantize ops go; the graph is not changed.

    ``recurrent=False`` leaves LSTM/GRU/RNN sequences and cells in floating point (listed
    as skipped) even where the descriptor has a rule for them.

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
    return _Planner(graph, hw, hw.effective_preset(preset), model_type, ignored_scope, strict, recurrent).run()


class _Planner:
    """One planning run over one graph and one descriptor.

    Attributes:
        view: The frozen mirror of the graph.
        hw: The hardware descriptor.
        preset: The descriptor's effective preset.
        model_type: None or ``"transformer"``.
        lpt: The target runs OpenVINO's low-precision transformations (ANY/CPU/GPU).
        ignored: Ops the user (or ``model_type``) keeps float; they also stop propagation.
        fused: Ops inside fused patterns, post-processing or descriptor ignored patterns.
        plan: The plan being built.
        edge_reqs: Quantizer requests on ``(op, input)`` edges.
        tensor_reqs: Quantizer requests on ``(op, output)`` tensors (output FQs).
        groups: The union-find of unified-scale group ids.
        recurrent_groups: Group ids of recurrent X/H quantizers.
    """

    def __init__(self, graph: Graph, hw: HardwareDescriptor, preset: str, model_type: str | None,
                 ignored_scope: IgnoredScope | dict | None, strict: bool, recurrent: bool = True) -> None:
        self.hw = hw
        self.recurrent = recurrent
        self.preset = preset
        self.model_type = model_type
        self.lpt = hw.low_precision_transformations
        self.view = GraphView(graph)
        self.ignored = as_ignored_scope(ignored_scope).resolve(graph, strict=strict)
        if model_type == "transformer":
            transformer_ignored = TRANSFORMER_IGNORED
            if "transformer_quantize_multiply" in hw.placement_rules:
                transformer_ignored = transformer_ignored - {"Multiply"}
            self.ignored |= {n for n in self.view.order if self.view.type(n) in transformer_ignored}
        self.fused = fused_ops(self.view)
        patterns = match_ignored_patterns(graph, hw.ignored_patterns, self.view.const, model_type)
        for name, nodes in patterns.items():
            log.debug("ignored pattern %s: %d ops kept float", name, len(nodes))
            self.fused |= nodes
        self.plan = PlacementPlan()
        self.plan.ignored_patterns = {name: sorted(graph.op(n).name for n in nodes) for name, nodes in patterns.items()}
        self.edge_reqs: dict[Edge, Request] = {}
        self.tensor_reqs: dict[Edge, Request] = {}
        self.groups = UnifiedGroups()
        self.recurrent_groups: list[int] = []

    @property
    def g(self) -> Graph:
        """The graph being planned for (read only)."""
        return self.view.g

    def run(self) -> PlacementPlan:
        """Requests, then placement producers-last, then group canonicalization."""
        for n in self.view.order:
            if n not in self.ignored and n not in self.fused:
                self._request(n)
        if self.lpt:
            self.plan.quantized_ops.extend(w.op for w in self.plan.weights if self.view.type(w.op) in CPU_INT8_RECURRENT
                                           and w.op not in self.plan.quantized_ops)
        # Walk producers-last: finalize each tensor once every consumer has been seen.
        for n in reversed(self.view.order):
            for o in range(len(self.g.op(n).outputs)):
                self._place_tensor(n, o)
        self._canonicalize_groups()
        self._explain_float()
        return self.plan

    def _explain_float(self) -> None:
        """Give every compute layer (Conv-like, MatMul, recurrent) left float a reason in
        ``plan.skipped``, if the request step did not already record one; also the ones
        inside sub-graph bodies (If/Loop/TensorIterator), which placement does not enter."""
        plan, view, g = self.plan, self.view, self.g
        placed = set(plan.quantized_ops) | {w.op for w in plan.weights} | {n for n, _i in self.edge_reqs}
        explained = {name for name, _why in plan.skipped}
        by_pattern = {name: pattern for pattern, names in plan.ignored_patterns.items() for name in names}
        for n in view.order:
            op = g.op(n)
            t = view.type(n)
            if op.bodies:
                self._explain_bodies(op.name, t, op.bodies)
            compute = t in WEIGHTED or t in RECURRENT_PORTS
            if not compute or n in placed or op.name in explained or view.const[n]:
                continue
            if n in self.ignored:
                why = ("ignored for model_type transformer" if self.model_type == "transformer"
                       and t in TRANSFORMER_IGNORED else "ignored scope")
            elif op.name in by_pattern:
                why = f"ignored pattern {by_pattern[op.name]}"
            elif n in self.fused:
                why = "feeds NMS/TopK post-processing"
            elif self.hw.rule_for(hw_type(view, self.hw, n)) is None:
                why = f"no {hw_type(view, self.hw, n)} rule in the {self.hw.target} descriptor"
            else:
                why = "descriptor rule quantizes no activation input"
            plan.skipped.append((op.name, why))

    def _explain_bodies(self, prefix: str, op_type: str, bodies: dict[str, Graph]) -> None:
        """``plan.skipped`` entries for compute layers inside the bodies of sub-graph op ``prefix``."""
        for tag, body in bodies.items():
            for _n, inner in body.ops():
                if inner.ov_type in WEIGHTED or inner.ov_type in RECURRENT_PORTS:
                    self.plan.skipped.append((f"{prefix}/{inner.name}",
                                              f"inside the {tag} of {op_type}, not quantized"))
                if inner.bodies:
                    self._explain_bodies(f"{prefix}/{inner.name}", inner.ov_type, inner.bodies)

    def _skip(self, n: int, why: str) -> None:
        """Record that ``n`` stays float and why."""
        self.plan.skipped.append((self.g.op(n).name, why))

    # ------------------------------------------------------------------ requests
    def _request(self, n: int) -> None:
        """Requests and weight commands for one op that is neither ignored nor fused."""
        hw, view = self.hw, self.view
        hwt = hw_type(view, hw, n)
        rule = hw.rule_for(hwt) or (hw.rule_for("Convolution") if hwt == "DepthWiseConvolution" else None)
        if hwt == "Embedding" and rule is not None and rule.weights:
            self._plan_embedding(n, rule)
            return
        if rule is None or not (rule.activations or rule.outputs):
            return
        t = view.type(n)
        if t in RECURRENT_PORTS:
            if not self.recurrent:
                self._skip(n, "recurrent op left in float (quantize_recurrent=False)")
                return
            gid = self._plan_recurrent(n, rule)
            if gid is not None:
                self.recurrent_groups.append(gid)
            return
        ports = self._input_ports(n, t, rule)
        if ports is None:
            return
        act_ports, weight_ports = ports
        weights = self._plan_weights(n, rule, weight_ports) if t in WEIGHTED and rule.weights else []
        if weights is None:
            return
        if rule.activations and act_ports:
            priority = 2 if hwt in hw.input_priority_types or t in hw.input_priority_types else 1
            self._request_activations(n, rule, act_ports, priority)
        if weights or (t in WEIGHTED and act_ports):
            self.plan.weights.extend(weights)
            if t in WEIGHTED and act_ports:
                self.plan.quantized_ops.append(n)
        if rule.outputs:
            self._request_output(n, rule)

    def _input_ports(self, n: int, t: str, rule: OpRule) -> tuple[list[int], list[int]] | None:
        """``(activation ports, weight ports)`` of ``n`` to quantize, or None when ``n`` is skipped.

        Weighted ops: the activation input(s) and constant weights (MatMul may have two
        activations; a convolution needs constant weights and an activation). Attention:
        both fixed ports or none. Eltwise: all activation inputs when there are at least
        two (CPU_SPR ``single_fq_add``: one of an Add's two). Other ops with an
        ``activations`` rule: input 0.
        """
        view = self.view
        n_in = len(self.g.op(n).inputs)
        if t in WEIGHTED:
            return self._weighted_ports(n, t)
        if t in ATTENTION_PORTS:
            act_ports = [i for i in ATTENTION_PORTS[t] if i < n_in and view.is_activation_input(n, i)]
            if len(act_ports) < len(ATTENTION_PORTS[t]):
                if act_ports:  # one quantized input gains nothing: the Q x K^T MatMul stays float
                    self._skip(n, "not every attention input is a float activation")
                act_ports = []
            return act_ports, []
        if t in ELTWISE:
            act_ports = [i for i in range(n_in) if view.is_activation_input(n, i)]
            own = view.runtime_quantization
            if own.found and any(own.keeps_input(view, n, i) for i in act_ports):
                self._skip(n, "part of the model's own run-time quantization (rounding, integer or range arithmetic)")
                return [], []
            if len(act_ports) < 2:
                act_ports = []
            elif "single_fq_add" in self.hw.placement_rules and t == "Add" and len(act_ports) == 2:
                act_ports = self._single_fq_add_ports(n, act_ports)
            return act_ports, []
        if n_in and rule.activations:
            own = view.runtime_quantization
            return ([0] if view.is_activation_input(n, 0) and not own.keeps_input(view, n, 0) else []), []
        return [], []

    def _weighted_ports(self, n: int, t: str) -> tuple[list[int], list[int]] | None:
        """Activation and constant weight ports of a Conv-like op or MatMul (None: skipped)."""
        view = self.view
        act_ports: list[int] = []
        weight_ports: list[int] = []
        for i in (0, 1) if t == "MatMul" else (0,):
            if view.is_const_input(n, i):
                weight_ports.append(i)
            elif view.is_activation_input(n, i):
                act_ports.append(i)
        if t != "MatMul":
            if not view.is_const_input(n, 1):
                self._skip(n, WeightSkip.NOT_CONSTANT.message)
                return None
            weight_ports.append(1)
        if not act_ports:
            self._skip(n, "no activation input to quantize")
            return None
        return act_ports, weight_ports

    def _plan_weights(self, n: int, rule: OpRule, weight_ports: list[int]) -> list[QuantizeWeight] | None:
        """Weight commands of a weighted op, per output channel where the config is (None: skipped)."""
        wcfg = pick(expand(rule.weights, weights=True), self.preset, weights=True)
        per_channel = wcfg is not None and wcfg.granularity == "perchannel"
        planned: list[QuantizeWeight] = []
        for i in weight_ports:
            src = weight_source(self.view, n, i)
            if isinstance(src, WeightSkip):
                self._skip(n, src.message)
                return None
            axes = weight_axes(self.view, n, i, src.value.ndim)
            lo, hi = weight_range(src.value, axes, wcfg, per_channel)
            planned.append(QuantizeWeight(n, i, src.port, wcfg, lo, hi, axes=axes if per_channel else ()))
        return planned

    def _request_activations(self, n: int, rule: OpRule, act_ports: list[int], priority: int) -> None:
        """Edge requests on ``act_ports`` of ``n``.

        A transformer's activation x activation MatMul gets symmetric quantizers; a
        per-channel config keeps channel axis 1 on inputs of rank >= 2, else per tensor.
        """
        both_act = self.view.type(n) == "MatMul" and len(act_ports) == 2
        cfg = pick(expand(rule.activations, weights=False), self.preset, weights=False,
                   force_symmetric=both_act and self.model_type == "transformer")
        for i in act_ports:
            axis = None
            if cfg.granularity == "perchannel":
                rank = self.view.input_rank(n, i)
                axis = 1 if rank is not None and rank >= 2 else None
            self.edge_reqs[(n, i)] = Request(cfg if axis is not None else per_tensor(cfg), priority=priority, axis=axis)

    def _request_output(self, n: int, rule: OpRule) -> None:
        """A tensor request after ``n`` (or after its fused bias Add) for an ``outputs`` rule (GNA).

        POT priorities: output FQs of activation functions and Parameters 1, others 0. A
        Parameter whose value consumers are all preprocessing gets none.
        """
        g, view = self.g, self.view
        t = view.type(n)
        ocfg = pick(expand(rule.outputs, weights=False), self.preset, weights=False)
        opriority = 1 if t == "Parameter" or not (rule.weights or t in ELTWISE) else 0
        out_node = n
        if t in WEIGHTED:
            cons = g.consumers(n, 0)
            if len(cons) == 1 and view.type(cons[0][0]) == "Add" and cons[0][0] in self.fused:
                out_node = cons[0][0]
        if not (g.op(out_node).outputs and view.is_float(out_node, 0)):
            return
        value_cons = [c for c in g.consumers(out_node, 0) if view.type(c[0]) != "ShapeOf"]
        if t == "Parameter" and value_cons and all(c[0] in self.fused for c in value_cons):
            return  # the FQ after a Parameter feeding preprocessing is dropped
        if value_cons:
            self.tensor_reqs[(out_node, 0)] = Request(per_tensor(ocfg), kind="outputs", priority=opriority)

    def _single_fq_add_ports(self, n: int, ports: list[int]) -> list[int]:
        """CPU_SPR: keep one input FQ of a two-activation Add.

        The input whose tensor feeds only this Add loses its quantizer (a branching input
        keeps its FQ for the other consumers anyway); when both feed only the Add, the larger
        tensor goes unquantized; when both branch, both stay.
        """
        g, view = self.g, self.view

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

    # ------------------------------------------------------- embedding, recurrent
    def _plan_embedding(self, n: int, rule: OpRule) -> None:
        """Embedding table (a Gather whose data is a constant): one weight FQ on the table.

        As NNCF's CPU/GPU/NPU setups (``HWOpName.EMBEDDING``, weights only): per table row
        (axis 0 of ``[vocab, hidden]``, NNCF's ``const_channel_axis``) whatever the Gather's
        axis, since the FQ sits on the table before the lookup. The indices and the output
        get nothing here; a quantizer requested downstream of the lookup stays on its output.
        """
        src = weight_source(self.view, n, 0)
        if isinstance(src, WeightSkip):
            if src is not WeightSkip.NOT_FLOAT:  # an integer table (shapes, ids) is no embedding
                self._skip(n, f"embedding table: {src.message}")
            return
        wcfg = pick(expand(rule.weights, weights=True), self.preset, weights=True)
        if wcfg is None or src.value.ndim < 1:
            return
        per_channel = wcfg.granularity == "perchannel" and src.value.ndim >= 2
        lo, hi = weight_range(src.value, (0,), wcfg, per_channel)
        self.plan.weights.append(QuantizeWeight(n, 0, src.port, wcfg, lo, hi, axes=(0,) if per_channel else ()))

    def _plan_recurrent(self, n: int, rule: OpRule) -> int | None:
        """LSTM/GRU/RNN sequences and cells: X and H activations, W and R weights.

        Ports paired in the descriptor's ``unified_scales`` share one range (the CPU plugin
        feeds [X, H] and [W, R] to one INT8 GEMM: differing X/H scales give wrong results
       ). Without a quantized X (and H, unless H is a constant) nothing is placed:
        weight FQs alone make the CPU plugin reject the model (``expects Constant for port
        4``). Returns the group id of the X/H quantizers (None when nothing was placed).
        """
        view = self.view
        t = view.type(n)
        attrs = self.g.op(n).attrs or {}
        (x_port, h_port), w_ports = RECURRENT_PORTS[t]
        if t.startswith("GRU") and str(attrs.get("linear_before_reset", "false")).lower() == "true":
            self._skip(n, "GRU with linear_before_reset (NNCF ignores it; the CPU INT8 LBR GRU does not compile)")
            return None
        if not view.is_activation_input(n, x_port):
            self._skip(n, "input X is not a float activation")
            return None
        act_ports = [x_port]
        if view.is_activation_input(n, h_port):
            act_ports.append(h_port)
        elif not view.is_const_input(n, h_port):
            self._skip(n, "initial state H is neither a float activation nor a constant")
            return None
        pairs: list[tuple[int, ...]]
        if rule.unified_scales == "all":
            pairs = [(x_port, h_port), tuple(w_ports)]
        else:
            pairs = [tuple(p) for p in (rule.unified_scales or ())]
        if rule.weights:
            weights = self._recurrent_weights(n, w_ports)
            if weights is None:
                return None
            self._plan_recurrent_weights(n, rule, weights, w_ports, pairs)
        cfg = pick(expand(rule.activations, weights=False), self.preset, weights=False)
        act_pair = next((p for p in pairs if x_port in p), ())
        # One group even for a lone X (H constant): it marks the range that must cover h_t.
        gid = self.groups.new()
        for i in act_ports:
            groups = frozenset({gid}) if i == x_port or i in act_pair else frozenset()
            self.edge_reqs[(n, i)] = Request(per_tensor(cfg), groups)
        # LSTM initial cell state: an activation input NNCF quantizes too, with its own range
        c_port = LSTM_CELL_STATE_PORT if t in ("LSTMSequence", "LSTMCell") else None
        if c_port is not None and view.is_activation_input(n, c_port):
            self.edge_reqs[(n, c_port)] = Request(per_tensor(cfg))
        return gid

    def _recurrent_weights(self, n: int, w_ports: tuple[int, int]) -> list[tuple[int, Edge, np.ndarray]] | None:
        """``(port, source, value)`` of the W and R inputs, or None (skipped) unless both are Consts."""
        weights: list[tuple[int, Edge, np.ndarray]] = []
        for i in w_ports:
            if not self.view.is_const_input(n, i):
                self._skip(n, WeightSkip.NOT_CONSTANT.message)
                return None
            src = weight_source(self.view, n, i)
            if isinstance(src, WeightSkip):
                self._skip(n, src.message)
                return None
            weights.append((i, src.port, src.value))
        return weights

    def _plan_recurrent_weights(self, n: int, rule: OpRule, weights: list[tuple[int, Edge, np.ndarray]],
                                w_ports: tuple[int, int], pairs: list[tuple[int, ...]]) -> None:
        """Weight commands for W and R; a pair in ``pairs`` shares one range and one group id.

        On LPT targets the weights are per tensor: the CPU plugin computes INT8 LSTM with
        per-channel weight FQs wrongly (max error 0.59 vs 0.013 emulated). A pair whose
        channel shapes differ falls back to one range per weight.
        """
        wcfg = pick(expand(rule.weights, weights=True), self.preset, weights=True)
        per_channel = wcfg.granularity == "perchannel" and not self.lpt
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
            gid = self.groups.new() if len(group) > 1 else None
            for j, s, _v in group:
                self.plan.weights.append(QuantizeWeight(n, j, s, wcfg, lo, hi, gid, axes if per_channel else ()))
                done.add(j)

    # ----------------------------------------------------------------- placement
    def _place_tensor(self, n: int, o: int) -> None:
        """Merge the requests on output ``o`` of ``n``: move them up, or emit activation commands.

        Runs once every consumer of the tensor has been seen (producers-last walk). A
        tensor whose every value consumer (ShapeOf aside) asks, or with an output request,
        gets one merged quantizer; otherwise the asking consumers share one FQ per distinct
        ``(config, axis)``.
        """
        view, edge_reqs = self.view, self.edge_reqs
        value_cons = [c for c in self.g.consumers(n, o) if view.type(c[0]) != "ShapeOf"]
        reqd = [c for c in value_cons if c in edge_reqs]
        treq = self.tensor_reqs.get((n, o))
        if not reqd and treq is None:
            return
        if treq is not None or len(reqd) == len(value_cons):
            reqs = [edge_reqs[c] for c in reqd] + ([treq] if treq else [])
            self._place_merged(n, o, value_cons, reqs)
            return
        by_cfg: dict[tuple[QConfig, int | None], list[Edge]] = {}
        for c in reqd:
            by_cfg.setdefault((edge_reqs[c].config, edge_reqs[c].axis), []).append(c)
        for (cfg, axis), cons in by_cfg.items():
            groups = self.groups.union(x for c in cons for x in edge_reqs[c].groups)
            kind = "outputs" if all(edge_reqs[c].kind == "outputs" for c in cons) else "activations"
            self.plan.activations.append(QuantizeActivation(n, o, tuple(cons), cfg, kind,
                                                            min(groups) if groups else None, axis))

    def _place_merged(self, n: int, o: int, value_cons: list[Edge], reqs: list[Request]) -> None:
        """One quantizer for the whole tensor: on the producer's inputs if it can move, else here.

        A quantizer moving up through a Concat splits into one request per input, all in
        one (new) unified group.
        """
        merged = merge_requests(reqs, self.hw.primary_bitwidth, self.groups.union(x for r in reqs for x in r.groups))
        targets = self._propagation_targets(n, o, merged)
        if targets:
            if len(targets) > 1 and self.view.type(n) == "Concat":
                merged.groups = self.groups.union([*merged.groups, self.groups.new()])
            for i in targets:
                self.edge_reqs[(n, i)] = Request(merged.config, merged.groups, merged.kind, merged.priority,
                                                 merged.axis)
            return
        self.plan.activations.append(QuantizeActivation(n, o, tuple(value_cons), merged.config, merged.kind,
                                                        min(merged.groups) if merged.groups else None, merged.axis))

    def _propagation_targets(self, n: int, o: int, req: Request | None = None) -> list[int]:
        """Inputs of ``n`` a quantizer on its whole output may move to (empty: stay here).

        Only through descriptor-agnostic ops that are neither ignored nor fused, with one
        used output; on LPT targets only through LPT precision-preserving ops; a
        per-channel quantizer only through :data:`~.op_tables.PER_CHANNEL_PRESERVING`.
        Concat: to every input when all are float activations; other ops: to input 0 when
        it is a float activation and every other input is constant.
        """
        g, view = self.g, self.view
        op = g.op(n)
        t = op.ov_type
        if n in self.ignored or n in self.fused or not self.hw.is_agnostic(t):
            return []
        # Multi-output ops (MaxPool-8 values + indices) only when the other outputs are unused.
        if o != 0 or any(g.consumers(n, k) for k in range(1, len(op.outputs))):
            return []
        if self.lpt and t not in LPT_PRECISION_PRESERVING:
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

    # -------------------------------------------------------------------- groups
    def _canonicalize_groups(self) -> None:
        """Put the activation commands in insertion order with canonical group ids.

        Group ids were unioned after some commands were made, so each becomes its root; a
        group left with one quantizer is dropped. Recurrent X/H groups get a signed range
        (``hidden_state``): the CPU plugin requantizes every h_t, which lives in (-1, 1),
        with the X/H scale, so an unsigned range clips its negative half (silero-vad: h
        error 0.69 -> 0.085 with a signed range). The magnitude comes from the statistics
        alone, as in NNCF (widening it to 1 cost 2-3 dB on small-range inputs).
        """
        find = self.groups.find
        rec_roots = {find(x) for x in self.recurrent_groups}
        activations = [
            QuantizeActivation(a.producer, a.out_index, a.consumers, a.config, a.group,
                               None if a.unified is None else find(a.unified), a.per_channel_axis,
                               a.range_include, a.unified is not None and find(a.unified) in rec_roots)
            for a in reversed(self.plan.activations)
        ]
        counts: dict[int, int] = {}
        for a in activations:
            if a.unified is not None:
                counts[a.unified] = counts.get(a.unified, 0) + 1
        self.plan.activations = [
            a if a.unified is None or counts[a.unified] > 1
            else QuantizeActivation(a.producer, a.out_index, a.consumers, a.config, a.group, None, a.per_channel_axis,
                                    a.range_include, a.hidden_state)
            for a in activations
        ]
