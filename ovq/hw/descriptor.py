"""Typed, frozen hardware descriptors: quantization spaces and per-op rules."""

from __future__ import annotations

from dataclasses import dataclass, field

# Target-specific placement rules a descriptor may switch on (``placement_rules``).
PLACEMENT_RULES = {
    "single_fq_add": "an Add with two quantized activation inputs keeps only one input FQ (CPU_SPR)",
    "transformer_quantize_multiply": "model_type='transformer' leaves Multiply quantizable (CPU_SPR)",
}


@dataclass(frozen=True, slots=True)
class QuantSpace:
    """A named quantization space (POT "alias", NNCF "qspace").

    ``modes`` and ``granularities`` are priority lists (first = preferred).
    ``level_low``/``level_high`` override the integer grid POT derives from the bits.
    """

    name: str
    bits: int
    modes: tuple[str, ...]
    granularities: tuple[str, ...]
    level_low: int | None = None
    level_high: int | None = None
    unified_zeropoint: bool = False

    def grid(self, *, weights: bool, mode: str | None = None) -> tuple[int, int]:
        """Integer grid ``(low, high)``: explicit levels, else POT's ``compute_levels``.

        Symmetric weights use the narrow grid (-2^(b-1)+1 .. 2^(b-1)-1, 255 levels at
        8 bits); everything else the full one (256 levels at 8 bits).
        """
        if self.level_low is not None and self.level_high is not None:
            return self.level_low, self.level_high
        mode = mode or self.modes[0]
        half = 2 ** (self.bits - 1)
        low = -half + 1 if (weights and mode == "symmetric") else -half
        return low, half - 1

    def levels(self, *, weights: bool, mode: str | None = None) -> int:
        """FakeQuantize ``levels`` for this space (255 for 8-bit symmetric weights)."""
        low, high = self.grid(weights=weights, mode=mode)
        return high - low + 1


@dataclass(frozen=True, slots=True)
class OpRule:
    """How one group of op types may be quantized.

    Empty ``activations``/``weights``/``outputs`` means "not quantized there"; a rule with
    none of them describes an agnostic op that still constrains scales (Concat with
    ``unified_scales = "all"``). Op types in a descriptor's ``agnostic`` set need no rule.
    """

    types: tuple[str, ...]
    activations: tuple[QuantSpace, ...] = ()
    weights: tuple[QuantSpace, ...] = ()
    outputs: tuple[QuantSpace, ...] = ()
    unified_scales: str | tuple[tuple[int, ...], ...] | None = None


@dataclass(frozen=True)
class HardwareDescriptor:
    """Everything ovq knows about quantizing for one target."""

    target: str
    source: str
    description: str = ""
    primary_bitwidth: int = 8
    spaces: dict[str, QuantSpace] = field(default_factory=dict)
    ops: tuple[OpRule, ...] = ()
    agnostic: frozenset[str] = frozenset()
    ignored_patterns: tuple[str, ...] = ()
    input_priority_types: tuple[str, ...] = ()
    placement_rules: tuple[str, ...] = ()
    low_precision_transformations: bool = False
    """The target's runtime decides INT8 execution with OpenVINO's Low Precision
    Transformations (CPU, GPU): a quantizer only moves up through LPT precision-preserving
    ops, recurrent weights get one per-tensor range, and the CPU INT8 recurrent ops count
    as quantized."""
    preset_overrides: dict[str, str] = field(default_factory=dict)
    """Presets the target runs as another one (``accuracy`` -> ``mixed`` on LPT targets,
    which have no asymmetric weights; ``mixed`` -> ``accuracy`` on GNA)."""
    custom_op_types: frozenset[str] = frozenset()
    """Op types from OpenVINO extensions the descriptor declares (``custom_op_types``), so
    that its rules may name them; any other type not in OpenVINO's opsets is refused."""

    def effective_preset(self, preset: str) -> str:
        """``preset`` after this target's :attr:`preset_overrides`."""
        return self.preset_overrides.get(preset, preset)

    def rule_for(self, op_type: str) -> OpRule | None:
        """The rule for ``op_type`` (``DepthWiseConvolution`` is a pseudo-type), or None."""
        from ovq.ir.graph import canonical_ir_type

        op_type = canonical_ir_type(op_type)
        for rule in self.ops:
            if op_type in rule.types:
                return rule
        return None

    def is_agnostic(self, op_type: str) -> bool:
        """True if quantizers may propagate through ``op_type`` unchanged."""
        from ovq.ir.graph import canonical_ir_type

        op_type = canonical_ir_type(op_type)
        if op_type in self.agnostic:
            return True
        rule = self.rule_for(op_type)
        return rule is not None and not (rule.activations or rule.weights or rule.outputs)

    def quantizable_types(self) -> list[str]:
        """Every op type with a rule, sorted."""
        return sorted({t for rule in self.ops for t in rule.types})

    def describe(self) -> str:
        """Multi-line table for ``ovq hw show``."""
        lines = [f"target {self.target} ({self.source})"]
        if self.description:
            lines.append(f"  {self.description}")
        lines.append(f"primary bit width: {self.primary_bitwidth}")
        lines.append("spaces:")
        for s in self.spaces.values():
            grid_w = s.grid(weights=True)
            lines.append(
                f"  {s.name:<12} {s.bits:>2}-bit {'/'.join(s.modes):<22} {'/'.join(s.granularities):<22} "
                f"weights grid {grid_w[0]}..{grid_w[1]} ({s.levels(weights=True)} levels), "
                f"activations {s.levels(weights=False)} levels{'  unified zero point' if s.unified_zeropoint else ''}"
            )
        lines.append("ops:")
        for rule in self.ops:
            parts = []
            for group in ("activations", "weights", "outputs"):
                spaces = getattr(rule, group)
                if spaces:
                    parts.append(f"{group}=[{', '.join(s.name for s in spaces)}]")
            if rule.unified_scales:
                parts.append(f"unified_scales={rule.unified_scales}")
            lines.append(f"  {', '.join(rule.types)}: {'; '.join(parts) or 'not quantized'}")
        lines.append(f"agnostic: {', '.join(sorted(self.agnostic)) or '-'}")
        if self.input_priority_types:
            lines.append(f"input priority types: {', '.join(self.input_priority_types)}")
        if self.ignored_patterns:
            lines.append(f"ignored patterns: {', '.join(self.ignored_patterns)}")
        if self.placement_rules:
            lines.append(f"placement rules: {', '.join(self.placement_rules)}")
        if self.low_precision_transformations:
            lines.append("runtime: OpenVINO Low Precision Transformations")
        if self.preset_overrides:
            lines.append("preset overrides: " + ", ".join(f"{k} -> {v}" for k, v in self.preset_overrides.items()))
        return "\n".join(lines)
