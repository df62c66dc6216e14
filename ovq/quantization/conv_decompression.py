"""Fold the int8 weight decompression of convolutions before a multi-stream CPU compile.

A convolution whose weights are stored compressed (``Const(i8|u8) → Convert →
[Subtract] → Multiply``, possibly followed by Transpose/Reshape, as TFLite int8 models
and ``nncf.compress_weights`` store them) keeps that subgraph through the CPU plugin's
transformations (its ``Convert`` is marked ``DisableConstantFolding``, by the TFLite
frontend or by the plugin itself), and the plugin computes the f32 weights in each
stream's graph when the model is compiled. With more
than one stream (the THROUGHPUT hint on any machine with two cores or more) those
convolutions sometimes run with the wrong weights: OpenVINO 2026.4 keys its per-socket
weights cache by the destination layout and the *address* of the source weights
(``DnnlExtensionUtils::computeWeightsStringHash``), and the decompressed weights are
per-graph buffers, not the model's constants. Every inference of such a compile is then
wrong from the first affected convolution on (fer: logits in the thousands, per-sample
maxima of 3694 where the correct value is 3.18). One stream (``NUM_STREAMS=1``, the
LATENCY hint, ``INFERENCE_NUM_THREADS=1``) never showed it; f32 weights never did.

:func:`fold_conv_weight_decompression` folds exactly those subgraphs into f32 ``Const``
ops on a copy of the model (OpenVINO's own ``ConstantFolding`` computes them, so the
weights are bit-identical to the ones the plugin would compute), which the plugin then
treats as ordinary constant weights. docs/reliability.md gives the measured frequencies
and a standalone reproducer.

Matches: ``Convert`` ops from an integer ``Const`` to a real type whose constant
consumers reach the weight input (port 1) of a ``Convolution`` or ``GroupConvolution``.
Emits: a clone of the model with those subgraphs folded (everything else OpenVINO's
``ConstantFolding`` folds is folded too, as the CPU plugin would at compile time), or the
model itself when nothing matches.
Preserves: the caller's model, op names of everything that is not a constant subgraph,
and every compressed weight that feeds something else (MatMul weights stay compressed:
the plugin's FullyConnected path reads them compressed, and folding would multiply
their size by four).
"""

from __future__ import annotations

from typing import Any

CONV_WEIGHT_CONSUMERS = frozenset({"Convolution", "GroupConvolution"})
_KEEP_UNFOLDED = "DisableConstantFolding"


def fold_conv_weight_decompression(model: Any) -> tuple[Any, int]:
    """(``model`` with its convolutions' weight decompression folded, how many subgraphs
    were folded). ``model`` itself is returned (not copied) when there are none."""
    if not decompressed_conv_weights(model):
        return model, 0
    from openvino import passes

    folded = model.clone()
    marked = decompressed_conv_weights(folded)
    for convert in marked:  # unmarked, so ConstantFolding folds them
        rt = convert.get_rt_info()
        for key in [k for k in rt.keys() if k.startswith(_KEEP_UNFOLDED)]:
            del rt[key]
    manager = passes.Manager()
    manager.register_pass(passes.ConstantFolding())
    manager.run_passes(folded)
    return folded, len(marked) - len(decompressed_conv_weights(folded))


def decompressed_conv_weights(model: Any) -> list[Any]:
    """The ``Convert`` ops of ``model`` that decompress an integer constant into
    convolution weights (see the module docstring)."""
    ops = model.get_ordered_ops()
    constant: set[int] = set()  # instance ids of the nodes whose value needs no Parameter
    for op in ops:
        kind = op.get_type_name()
        if kind == "Constant" or (op.get_input_size() > 0 and kind not in ("Parameter", "ReadValue") and all(
                v.get_node().get_instance_id() in constant for v in op.input_values())):
            constant.add(op.get_instance_id())
    found = []
    for op in ops:
        if (op.get_type_name() == "Convert" and op.get_instance_id() in constant
                and op.input_value(0).get_node().get_type_name() == "Constant"
                and op.get_input_element_type(0).is_integral() and op.get_output_element_type(0).is_real()
                and _reaches_conv_weights(op, constant)):
            found.append(op)
    return found


def _reaches_conv_weights(start: Any, constant: set[int]) -> bool:
    """Whether a path of constant ops leads from ``start`` to port 1 of a convolution."""
    stack, seen = [start], {start.get_instance_id()}
    while stack:
        node = stack.pop()
        for out in node.outputs():
            for target in out.get_target_inputs():
                consumer = target.get_node()
                if consumer.get_type_name() in CONV_WEIGHT_CONSUMERS and target.get_index() == 1:
                    return True
                key = consumer.get_instance_id()
                if key in constant and key not in seen:
                    seen.add(key)
                    stack.append(consumer)
    return False
