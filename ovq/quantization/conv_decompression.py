"""Fold the int8 weight decompression of convolutions before a multi-stream CPU compile.

A convolution whose weights are stored compressed (``Const(i8|u8) → Convert →
[Subtract] → Multiply``, possibly followed by Transpose/Reshape, as TFLite int8 models
and ``nncf.compress_weights`` store them) keeps that subgraph through the CPU plugin's
transformations (its ``Convert`` is marked ``DisableConstantFolding``, by the TFLite
frontend or by the plugin itself), and the plugin computes the f32 weights in each
stream's graph when the model is compiled. With more than one stream (the THROUGHPUT
hint on any machine with two cores or more) some fresh compiles then run those
convolutions with the wrong weights (OpenVINO 2026.4): every inference of such a compile
is wrong from the first affected convolution on (fer: logits in the thousands,
per-sample maxima of 3694 where the correct value is 3.18). One stream (``NUM_STREAMS=1``,
the LATENCY hint, ``INFERENCE_NUM_THREADS=1``) never showed it; f32 weights never did. The
plugin shares one weights cache between a compiled model's streams and keys it by the
destination layout and the *address* of the source weights
(``DnnlExtensionUtils::computeWeightsStringHash``); decompressed weights live in per-graph
buffers rather than in the model's constants, which fits what is seen (not verified
inside the plugin).

:func:`fold_conv_weight_decompression` replaces each such convolution's weight input by
an f32 ``Const`` on a copy of the model (evaluated by OpenVINO's reference
implementations, as its ``ConstantFolding`` would: bit-identical weights and outputs),
which the plugin then treats as ordinary constant weights. docs/reliability.md gives the
measured frequencies and a standalone reproducer.

Matches: ``Convert`` ops from an integer ``Const`` to a real type whose constant
consumers reach the weight input (port 1) of a ``Convolution`` or ``GroupConvolution``.
Emits: a clone of the model in which every such weight input reads one ``Const`` named
like the op that produced it, or the model itself when nothing matches. A weight whose
subgraph OpenVINO cannot evaluate is left as it is.
Preserves: the caller's model, every op outside the folded weight subgraphs, and
compressed weights that feed anything else (MatMul weights stay compressed: the plugin's
FullyConnected path reads them compressed, and folding would multiply their size by
four; a decompression shared with a MatMul stays for the MatMul).
"""

from __future__ import annotations

from typing import Any

CONV_WEIGHT_CONSUMERS = frozenset({"Convolution", "GroupConvolution"})


def fold_conv_weight_decompression(model: Any) -> tuple[Any, int]:
    """(``model`` with its convolutions' weight decompression folded, how many
    decompressing ``Convert`` ops were folded away). ``model`` itself is returned (not
    copied) when there are none."""
    if not decompressed_conv_weights(model):
        return model, 0
    import openvino as ov

    folded = model.clone()
    ops = folded.get_ordered_ops()
    constant = _constant_nodes(ops)
    tainted = {c.get_instance_id() for c in decompressed_conv_weights(folded)}
    before = len(tainted)
    for op in ops:
        key = op.get_instance_id()
        if key in constant and any(v.get_node().get_instance_id() in tainted for v in op.input_values()):
            tainted.add(key)
        if op.get_type_name() not in CONV_WEIGHT_CONSUMERS:
            continue
        weights = op.input_value(1)
        producer = weights.get_node()
        if producer.get_instance_id() not in tainted:
            continue
        try:  # a fresh cache per weight: only one weight's intermediate tensors are alive at a time
            value = _evaluate(weights, {})
        except _Unevaluable:
            continue
        const = ov.op.Constant(value)
        const.set_friendly_name(producer.get_friendly_name())
        op.input(1).replace_source_output(const.output(0))
    return folded, before - len(decompressed_conv_weights(folded))


def decompressed_conv_weights(model: Any) -> list[Any]:
    """The ``Convert`` ops of ``model`` that decompress an integer constant into
    convolution weights (see the module docstring)."""
    ops = model.get_ordered_ops()
    constant = _constant_nodes(ops)
    found = []
    for op in ops:
        if (op.get_type_name() == "Convert" and op.get_instance_id() in constant
                and op.input_value(0).get_node().get_type_name() == "Constant"
                and op.get_input_element_type(0).is_integral() and op.get_output_element_type(0).is_real()
                and _reaches_conv_weights(op, constant)):
            found.append(op)
    return found


def _constant_nodes(ops: list[Any]) -> set[int]:
    """Instance ids of the nodes among ``ops`` (in topological order) whose value needs no
    Parameter or state."""
    constant: set[int] = set()
    for op in ops:
        kind = op.get_type_name()
        if kind == "Constant" or (op.get_input_size() > 0 and kind not in ("Parameter", "ReadValue") and all(
                v.get_node().get_instance_id() in constant for v in op.input_values())):
            constant.add(op.get_instance_id())
    return constant


def _evaluate(output: Any, values: dict[int, list[Any]]) -> Any:
    """The ``openvino.Tensor`` of a constant ``output``, evaluated by OpenVINO's reference
    implementations as ``ConstantFolding`` does (``values`` caches evaluated nodes)."""
    import openvino as ov

    node = output.get_node()
    key = node.get_instance_id()
    if key not in values:
        inputs = [_evaluate(v, values) for v in node.input_values()]
        outputs = [ov.Tensor(node.get_output_element_type(i), node.get_output_shape(i))
                   for i in range(node.get_output_size())]
        if not node.evaluate(outputs, inputs):
            raise _Unevaluable(node.get_friendly_name())
        values[key] = outputs
    return values[key][output.get_index()]
class _Unevaluable(Exception):
    """An op of a weight subgraph has no reference implementation OpenVINO can run."""


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
