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

from ovq.pipeline import Pass, PassContext, register_pass

log = logging.getLogger("ovq.passes.fold_constants")

_PROBE_PREFIX = "__ovq_fold_"
# Weight representations that folding would expand back to floating point.
_LOW_PRECISION = {"i8", "u8", "i4", "u4", "nf4", "f4e2m1", "u2", "u1", "f8e4m3", "f8e5m2", "f8e8m0"}
_KEEP_TYPES = {"FakeQuantize", "FakeConvert"}


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
    ``fold_fp16=False`` also keeps FP16 weight decompression (Const f16 → Convert).
    Follow with nothing: the folded subgraph is removed here.
    """

    name = "fold-constants"
    fold_fp16: bool = True

    def run(self, graph, ctx: PassContext) -> None:
        folded = self._probe(graph)
        if not folded:
            return
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
                        keep = et in _LOW_PRECISION or (et == "f16" and not self.fold_fp16)
            if keep:
                guard.add(node)
                guard |= nx.descendants(graph.nx, node)
        return guard

    def _probe(self, graph) -> dict[tuple[int, int], np.ndarray]:
        """Run OpenVINO's ConstantFolding on a copy; map (node, output) to folded values."""
        from openvino import passes

        probe = graph.copy()
        for node, op in probe.ops():
            op.name = f"{_PROBE_PREFIX}{node}"
            if op.rt_info is not None and self.fold_fp16:
                # Let OpenVINO fold FP16 decompression Converts too.
                for attr in list(op.rt_info):
                    if attr.get("name") in ("decompression", "disable_const_folding"):
                        op.rt_info.remove(attr)
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
            if node not in graph or graph.op(node).is_const:
                continue
            value = _constant_value(ov_op)
            if value is not None:
                folded[(node, out_index)] = value
        return folded


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
