""":class:`QuantizeReport`: what one run of the quantize phases did, with time per phase."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ovq.quantization.channel_split import ChannelSplit
    from ovq.quantization.range_search import RangeSearchDecision
    from ovq.quantization.saturation import SaturationDecision


@dataclass
class QuantizeReport:
    """What :func:`ovq.quantize` did, with the wall time spent per phase (seconds)."""

    samples: int = 0
    activation_fqs: int = 0
    weight_fqs: int = 0
    quantized_ops: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """``(op name, reason)`` for every compute layer (Conv-like, MatMul, recurrent) left float."""
    weights_folded: list[str] = field(default_factory=list)
    """Ops whose weights were a constant subgraph (Transpose/Convert/... of Consts), folded to a Const."""
    smoothed: int = 0
    smooth_alphas: list[float] = field(default_factory=list)  # per smoothed group
    channel_splits: list[ChannelSplit] = field(default_factory=list)  # groups whose channels were split
    bias_corrected: int = 0
    bias_skipped: list[tuple[str, float]] = field(default_factory=list)
    bias_shifts: dict[str, float] = field(default_factory=dict)  # applied corrections: mean |shift| per layer
    overflow_fixed: int = 0  # weight quantizers given 7-bit weights (on some or all channels)
    overflow_decisions: list[SaturationDecision] = field(default_factory=list)  # overflow_fix="auto"
    range_search: list[RangeSearchDecision] = field(default_factory=list)  # range_search != "none"
    compressed: int = 0
    weight_bytes_before: int = 0
    weight_bytes_after: int = 0
    phases: dict[str, float] = field(default_factory=dict)
    requests: int = 0

    def add_time(self, phase: str, seconds: float) -> None:
        """Add ``seconds`` to ``phase``'s time."""
        self.phases[phase] = self.phases.get(phase, 0.0) + seconds

    def format(self) -> str:
        """A few human-readable lines."""
        lines = [
            f"calibration samples: {self.samples} ({self.requests} infer requests in flight)",
            f"FakeQuantize: {self.activation_fqs} on activations, {self.weight_fqs} on weights; "
            f"{self.quantized_ops} ops quantized",
            *([f"SmoothQuant: {self.smoothed} MatMuls smoothed, alpha {_span(self.smooth_alphas)}"]
              if self.smoothed else []),
            *([f"channel split: {len(self.channel_splits)} smoothed groups, "
               f"{sum(c.extra for c in self.channel_splits)} input channels added"] if self.channel_splits else []),
            f"bias correction: {self.bias_corrected} layers corrected, {len(self.bias_skipped)} left (shift too large "
            f"or zero bias)",
        ]
        if self.range_search:
            acts = [d for d in self.range_search if d.kind == "activation"]
            narrowed = sum(d.after_nmse < d.before_nmse for d in acts)
            clipped = sum(d.clipped_channels for d in self.range_search if d.kind == "weight")
            lines.append(f"range search: {narrowed} of {len(acts)} activation ranges narrowed, "
                         f"{clipped} weight channels clipped")
        if self.overflow_decisions:
            hit = [d for d in self.overflow_decisions if d.saturated]
            halved = sum(d.halved for d in self.overflow_decisions)
            spread = sum(d.spread for d in self.overflow_decisions)
            lines.append(f"saturation (x86 without VNNI): {len(hit)} of {len(self.overflow_decisions)} layers saturate; "
                         f"7-bit weights on {halved} channels of {self.overflow_fixed - spread} layers"
                         + (f"; input channels spread beside zeros in {spread} layers" if spread else ""))
        elif self.overflow_fixed:
            lines.append(f"overflow fix: 7-bit weights on {self.overflow_fixed} layers")
        if self.weights_folded:
            lines.append(f"weight paths: {len(self.weights_folded)} layers had weights computed from constants, "
                         f"folded to constants")
        if self.compressed:
            lines.append(f"weights: {self.compressed} tensors to integers, {self.weight_bytes_before / 2**20:.2f} MiB -> "
                         f"{self.weight_bytes_after / 2**20:.2f} MiB")
        if self.skipped:
            shown = ", ".join(f"{n} ({why})" for n, why in self.skipped[:8])
            more = f" and {len(self.skipped) - 8} more" if len(self.skipped) > 8 else ""
            lines.append(f"left in floating point: {shown}{more}")
        lines.append("time: " + ", ".join(f"{k} {v:.2f} s" for k, v in self.phases.items())
                     + f" (total {sum(self.phases.values()):.2f} s)")
        return "\n".join(lines)


def _span(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"
