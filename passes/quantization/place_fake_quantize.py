"""``place-fake-quantize``: insert FakeQuantize ops where the hardware descriptor allows.

Matches: every op with an ``activations``/``weights``/``outputs`` rule in the target's
descriptor (see :mod:`ovq.quantization.placement` and docs/placement.md for the rules).
Emits: FakeQuantize-1 ops named ``<producer>/fq_output_<port>`` (activations) and
``<op>/fq_weights_<port>`` (weights, ranges final) and their records in
``graph.meta`` (:mod:`ovq.quantization.records`); activation ranges are the placeholder
``[0, 1]`` (``ovq.quantize`` runs placement and calibration as one flow).
Preserves: model inputs/outputs and their names; values only up to quantization.
Run after fusion (``fuse-batchnorm``, ``fold-linear``, ``fold-constants``): linear ops
between an FQ and a Conv destroy INT8 execution on CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from ovq.pipeline import Pass, PassContext, register_pass


@register_pass
@dataclass(frozen=True)
class PlaceFakeQuantizePass(Pass):
    """Insert FakeQuantize ops per the target's hardware descriptor (CPU INT8 rules)."""

    name = "place-fake-quantize"
    target: str = "ANY"
    """Target name or descriptor path (``ANY``, ``CPU``, ``GPU``, ``NPU``, ``GNA``, ...)."""
    preset: str | None = None
    """``performance`` (default), ``mixed`` (default for transformers) or ``accuracy``."""
    model_type: str | None = None
    """``transformer`` or None."""
    ignored_names: tuple[str, ...] = ()
    """Op names left in floating point."""
    ignored_types: tuple[str, ...] = ()
    """Op types left in floating point."""
    ignored_patterns: tuple[str, ...] = ()
    """Regular expressions matched against whole op names; matches stay in floating point."""
    strict: bool = False
    """Raise when an ignored-scope entry matches nothing."""

    def run(self, graph, ctx: PassContext) -> None:
        from ovq.quantization import quantize_graph
        from ovq.quantization.ignored_scope import IgnoredScope

        target = self.target if self.target != "ANY" or ctx.target is None else ctx.target
        scope = None
        if self.ignored_names or self.ignored_types or self.ignored_patterns:
            # strict decides: an unmatched entry is an error with strict=true, a warning otherwise
            scope = IgnoredScope(names=self.ignored_names, types=self.ignored_types,
                                 patterns=self.ignored_patterns, validate=self.strict)
        quantize_graph(graph, target, preset=self.preset, model_type=self.model_type, ignored_scope=scope,
                       strict=self.strict)
