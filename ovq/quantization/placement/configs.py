"""Quantizer configurations: picking one from a descriptor rule, merging requests.

A descriptor rule lists quantization spaces (:class:`~ovq.hw.QuantSpace`); each expands
into concrete :class:`~ovq.quantization.records.QConfig` candidates (one per mode and
granularity), and the preset picks one. While planning, every quantizer an op asks for is
a :class:`Request` on an input edge or a tensor; requests that meet on one tensor merge
into one (:func:`merge_requests`), following POT's ``fake_quantize_configuration.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ovq.hw import QuantSpace
from ovq.quantization.records import QConfig


@dataclass
class Request:
    """A quantizer some op asks for on one of its inputs (or on its output).

    Attributes:
        config: The grid the requesting op wants.
        groups: Unified-scale group ids the request belongs to (at most one root after
            :meth:`~ovq.quantization.placement.groups.UnifiedGroups.union`).
        kind: ``"activations"``, or ``"outputs"`` for an output FQ (GNA).
        priority: POT ``fq_config_priority``: the highest wins when quantizers merge.
        axis: Channel axis of a per-channel request, or None.
    """

    config: QConfig
    groups: frozenset[int] = frozenset()
    kind: str = "activations"
    priority: int = 1
    axis: int | None = None


def expand(spaces: Sequence[QuantSpace], *, weights: bool) -> list[QConfig]:
    """Every concrete config of ``spaces``, in descriptor order (space, mode, granularity)."""
    out = []
    for s in spaces:
        for mode in s.modes:
            low, high = s.grid(weights=weights, mode=mode)
            out.extend(QConfig(s.name, s.bits, mode, low, high, gran) for gran in s.granularities)
    return out


def pick(configs: list[QConfig], preset: str, *, weights: bool, force_symmetric: bool = False) -> QConfig | None:
    """The config a preset picks, or None when there is none.

    Activations take the first candidate under ``performance`` and the last otherwise;
    weights take the last only under ``accuracy``. ``force_symmetric`` keeps only the
    symmetric candidates when there are any (transformer activation x activation MatMul).
    """
    if force_symmetric:
        configs = [c for c in configs if c.mode == "symmetric"] or configs
    if not configs:
        return None
    if weights:
        return configs[-1] if preset == "accuracy" else configs[0]
    return configs[0] if preset == "performance" else configs[-1]


def merge_configs(configs: Iterable[QConfig], primary_bits: int) -> QConfig:
    """One config for several: the primary bit width, then the lower bit width, then symmetric."""
    uniq = list(dict.fromkeys(configs))
    if len(uniq) == 1:
        return uniq[0]
    return min(uniq, key=lambda c: (c.bits != primary_bits, c.bits, c.mode != "symmetric"))


def per_tensor(config: QConfig) -> QConfig:
    """``config`` with per-tensor granularity."""
    if config.granularity == "pertensor":
        return config
    return QConfig(config.space, config.bits, config.mode, config.level_low, config.level_high, "pertensor")


def merge_requests(reqs: Sequence[Request], primary_bits: int, groups: frozenset[int]) -> Request:
    """One request for a tensor several quantizers meet on.

    The highest priority wins (GNA3 ``input_priority_types``); among equals, the primary
    bit width, then the lower bit width, then symmetric. The winner keeps its group
    (``activations``/``outputs``). Per-channel survives only if every request is
    per-channel on the same axis (POT falls back perchannel -> pertensor).
    """
    top = max(r.priority for r in reqs)
    best = [r for r in reqs if r.priority == top]
    config = merge_configs((r.config for r in best), primary_bits)
    axes = {r.axis for r in reqs}
    axis = None
    if config.granularity == "perchannel" and len(axes) == 1 and None not in axes \
            and all(r.config.granularity == "perchannel" for r in reqs):
        axis = axes.pop()
    else:
        config = per_tensor(config)
    kinds = {r.kind for r in best}
    kind = "outputs" if kinds == {"outputs"} else "activations"
    return Request(config, groups, kind, top, axis)
