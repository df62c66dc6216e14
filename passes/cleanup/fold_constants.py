"""``fold-constants``: replace constant subgraphs by the constants they compute.

The values come from OpenVINO's own ``ConstantFolding`` run on a probe copy of the
model, so every op type and element type folds with OpenVINO's exact semantics
(Broadcast, Reshape/Squeeze/Unsqueeze, Transpose, Concat, Gather, ShapeOf on static
shapes, elementwise arithmetic, Convert including FP16 weight decompression, ...). The
mirror is then edited through the graph API: each folded output that something still
uses is replaced by a new Const, and the dead subgraph is removed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import networkx as nx
import numpy as np

from ovq.ir.element_types import element_type_from_precision
from ovq.pipeline import Pass, PassContext, register_pass

log = logging.getLogger("ovq.passes.fold_constants")

_PROBE_PREFIX = "__ovq_fold_"
# Weight representations that folding would expand back to floating point.
_LOW_PRECISION = {"i8", "u8", "i4", "u4", "nf4", "f4e2m1", "u2", "u1", "f8e4m3", "f8e5m2", "f8e8m0"}
_KEEP_TYPES = {"FakeQuantize", "FakeConvert"}
# Never folded even with constant inputs: random sources and stateful/sink ops.
_NEVER_FOLD = {"Parameter", "Result", "ReadValue", "Assign", "RandomUniform", "Multinomial"} | _KEEP_TYPES


@register_pass
@dataclass(frozen=True)
class FoldConstantsPass(Pass):
    """Fold constant subgraphs into plain Const ops.

    Matches: ops whose inputs are all (transitively) constant, and ShapeOf of a static
    shape, as OpenVINO's ConstantFolding decides.
    Emits: one Const per folded output still used, named like the op it replaces (as
    OpenVINO does) and carrying its tensor names.
    Preserves: quantization. Subgraphs containing FakeQuantize/FakeConvert, or a
    Convert of int8/int4/fp8 weights (compressed weights), are never folded.
    ``fold_fp16=False`` also keeps FP16 weight decompression (Const f16 → Convert);
    ``fold_int8=True`` expands int8/uint8 weight decompression too (what ``ovq.quantize``
    does on the paths that feed weights, to requantize them); 4-bit and fp8 weights are
    always kept.
    Follow with nothing: the folded subgraph is removed here.
    """

    name = "fold-constants"
    fold_fp16: bool = True
    fold_int8: bool = False

    def run(self, graph, ctx: PassContext) -> None:
        self.fold(graph)

    def fold(self, graph, within: set[int] | None = None) -> int:
        """Fold the constant subgraphs of ``graph`` (only nodes in ``within`` when given);
        return how many outputs became Consts."""
        folded = self._probe(graph, within)
        if not folded:
            return 0
        protected = self._protected(graph)
        folded_nodes = {node for node, _ in folded}
        replaced = 0
        for (node, out_index), value in sorted(folded.items()):
            if node in protected:
                continue
            consumers = graph.consumers(node, out_index)
            # Only the frontier of a folded region gets a Const; inner values die with it.
            if not any(c not in folded_nodes or c in protected for c, _ in consumers):
                continue
            op = graph.op(node)
            name = op.name if len(op.outputs) == 1 else f"{op.name}.{out_index}"
            const = graph.add_const(value, name, element_type=_element_type_name(value))
            graph.replace_output(node, out_index, const, 0)
            replaced += 1
        if replaced:
            graph.remove_dead_nodes()
            log.info("fold-constants: replaced %d outputs by constants", replaced)
        return replaced

    def _protected(self, graph) -> set[int]:
        """Nodes whose folding would undo quantization or compression."""
        guard: set[int] = set()
        for node, op in graph.ops():
            keep = op.type in _KEEP_TYPES
            if op.type == "Convert":
                producer = graph.producer(node, 0)
                if producer is not None:
                    src = graph.op(producer[0])
                    if src.is_const and src.const is not None:
                        et = src.const.element_type.name
                        keep = (et in _LOW_PRECISION and not (self.fold_int8 and et in ("i8", "u8"))) or (
                            et == "f16" and not self.fold_fp16)
            if keep:
                guard.add(node)
                guard |= nx.descendants(graph.nx, node)
        return guard

    def _probe(self, graph, within: set[int] | None = None) -> dict[tuple[int, int], np.ndarray]:
        """Run OpenVINO's ConstantFolding on the foldable region; map (node, output) to values.

        The probe model holds only ops whose inputs are all constant (transitively), the
        Consts they read, and, for ShapeOf of a statically shaped tensor, a Parameter of
        that shape standing in for the tensor. Weights that feed ordinary ops stay out,
        so the probe is small even for large models.
        """
        from openvino import passes

        foldable, shape_inputs = self._foldable(graph)
        if within is not None:
            foldable &= within
            shape_inputs = {n: src for n, src in shape_inputs.items() if n in foldable}
        frontier = [
            (node, k)
            for node in foldable
            for k in range(len(graph.op(node).outputs))
            if any(c not in foldable for c, _ in graph.consumers(node, k))
        ]
        if not frontier:
            return {}
        const_inputs = {
            src for node in foldable for src, _k in (p for p in graph.inputs_of(node) if p is not None)
            if graph.op(src).is_const
        }
        probe = graph.subgraph(foldable | const_inputs)
        for node, op in probe.ops():
            op.name = f"{_PROBE_PREFIX}{node}"
            if op.rt_info is not None and self.fold_fp16:
                # Let OpenVINO fold FP16 decompression Converts too.
                for attr in list(op.rt_info):
                    if attr.get("name") in ("decompression", "disable_const_folding"):
                        op.rt_info.remove(attr)
        for node, (src, k) in shape_inputs.items():
            port = graph.op(src).outputs[k]
            et = element_type_from_precision(port.precision or "FP32")
            param = probe.add_op("Parameter", f"__ovq_shape_of_{node}",
                                 attrs={"shape": ",".join(map(str, port.shape)),
                                        "element_type": et.name if et else "f32"})
            probe.op(param).outputs[0].precision = port.precision or "FP32"
            probe.op(param).outputs[0].shape = list(port.shape)
            probe.connect(param, 0, node, 0)
        for node, k in frontier:
            result = probe.add_op("Result", f"__ovq_out_{node}_{k}", num_inputs=1, outputs=0)
            probe.connect(node, k, result, 0)
        model = probe.to_ov()
        manager = passes.Manager()
        manager.register_pass(passes.ConstantFolding())
        manager.run_passes(model)
        folded: dict[tuple[int, int], np.ndarray] = {}
        for ov_op in model.get_ops():
            if ov_op.get_type_name() != "Constant":
                continue
            name = ov_op.get_friendly_name()
            if not name.startswith(_PROBE_PREFIX):
                continue
            ident, _, index = name[len(_PROBE_PREFIX):].partition(".")
            try:
                node, out_index = int(ident), int(index or 0)
            except ValueError:
                continue
            if node not in foldable:
                continue
            value = _constant_value(ov_op)
            if value is not None:
                folded[(node, out_index)] = value
        return folded

    @staticmethod
    def _foldable(graph) -> tuple[set[int], dict[int, tuple[int, int]]]:
        """Ops whose every input is constant, plus ShapeOf of statically shaped tensors."""
        foldable: set[int] = set()
        shape_inputs: dict[int, tuple[int, int]] = {}
        for node in graph.topological_order():
            op = graph.op(node)
            if op.is_const or not op.inputs or not op.outputs or op.bodies or op.type in _NEVER_FOLD:
                continue
            producers = graph.inputs_of(node)
            if op.type in ("ShapeOf", "ShapeOf-3") and producers[0] is not None:
                src, k = producers[0]
                shape = graph.op(src).outputs[k].shape
                if src not in foldable and not graph.op(src).is_const:
                    if shape is not None and all(d >= 0 for d in shape):
                        foldable.add(node)
                        shape_inputs[node] = (src, k)
                    continue
            if all(p is not None and (graph.op(p[0]).is_const or p[0] in foldable) for p in producers):
                foldable.add(node)
        return foldable, shape_inputs


def _constant_value(ov_op) -> np.ndarray | None:
    et = ov_op.get_output_element_type(0)
    if not (et.is_real() or et.is_integral()) or et.bitwidth < 8 or et.get_type_name() == "bf16":
        return None
    try:
        return np.array(ov_op.get_data(), copy=True)
    except Exception:  # types numpy cannot hold
        return None


def _element_type_name(value: np.ndarray) -> str | None:
    return "boolean" if value.dtype == np.bool_ else None
