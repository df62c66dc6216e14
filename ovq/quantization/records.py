"""Typed records of the FakeQuantize ops a quantization flow inserted.

Placement turns its plan into one :class:`Quantizer` per inserted FakeQuantize and keeps
them in a :class:`QuantizerTable` (``graph.meta[META_KEY]``). Every later phase —
statistics, SmoothQuant, ranges, overflow fix, bias correction, weight compression, the
report — reads these records, never string-keyed dicts, and :mod:`.ranges` writes each
range back into its record as it sets it on the graph.

A record describes one quantizer from plan to written model: its role, integer grid
(:class:`QConfig`), the channel axes of a per-channel range, the ops it feeds, the
unified-scale group it belongs to, and its range once known.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

META_KEY = "ovq.quantizers"
"""``graph.meta`` key of the :class:`QuantizerTable`."""
QUANTIZED_OPS_KEY = "ovq.quantized_ops"
"""``graph.meta`` key of the names of the ops placement quantized."""


class Role(str, enum.Enum):
    """What a FakeQuantize quantizes."""

    WEIGHTS = "weights"
    """A constant weight tensor (range final at placement)."""
    ACTIVATIONS = "activations"
    """An activation input of a quantized op (range from calibration)."""
    OUTPUTS = "outputs"
    """An op output a target quantizes after the op (GNA)."""


@dataclass(frozen=True)
class QConfig:
    """A resolved quantizer configuration: integer grid and mode of one FakeQuantize."""

    space: str
    bits: int
    mode: str
    level_low: int
    level_high: int
    granularity: str = "pertensor"

    @property
    def levels(self) -> int:
        """FakeQuantize ``levels``."""
        return self.level_high - self.level_low + 1

    @property
    def symmetric(self) -> bool:
        """True for a symmetric grid (zero at a level in the middle)."""
        return self.mode == "symmetric"


@dataclass(eq=False)
class Quantizer:
    """One inserted FakeQuantize.

    Attributes:
        name: The FakeQuantize op's name.
        node: Its node id in the graph.
        role: Weights, activations or outputs.
        config: Integer grid and mode.
        consumers: ``(op, input)`` pairs the FakeQuantize feeds.
        axes: Channel axes of a per-channel range (weights: the output-channel axes;
            activations: the one channel axis); empty for a per-tensor range.
        unified: Id of the group of quantizers that share one range (Concat inputs,
            recurrent X/H and W/R pairs), or None.
        weight_op: For weights, the name of the op the weights belong to.
        range_include: An interval the activation range must cover before unification
            (recurrent X/H groups: the hidden state lives in (-1, 1)).
        hidden_state: The range also carries a recurrent hidden state (LSTM/GRU X/H
            groups: the plugin requantizes every h_t in (-1, 1) with it): it is signed.
        low: The range's lower bound once known (``input_low == output_low``).
        high: The range's upper bound once known.
    """

    name: str
    node: int
    role: Role
    config: QConfig
    consumers: tuple[tuple[int, int], ...] = ()
    axes: tuple[int, ...] = ()
    unified: int | None = None
    weight_op: str | None = None
    range_include: tuple[float, float] | None = None
    hidden_state: bool = False
    low: np.ndarray | None = field(default=None, repr=False)
    high: np.ndarray | None = field(default=None, repr=False)

    @property
    def is_weight(self) -> bool:
        """True for a weight quantizer."""
        return self.role is Role.WEIGHTS

    @property
    def mode(self) -> str:
        """``symmetric`` or ``asymmetric``."""
        return self.config.mode

    @property
    def levels(self) -> int:
        """FakeQuantize ``levels``."""
        return self.config.levels

    @property
    def per_channel_axis(self) -> int | None:
        """The channel axis of a per-channel activation range, else None."""
        if self.role is Role.WEIGHTS or not self.axes:
            return None
        return self.axes[0]

    @property
    def signed(self) -> bool | None:
        """Whether the range reaches below zero; None until the range is known."""
        if self.low is None:
            return None
        return bool(np.min(self.low) < 0)


class QuantizerTable(Mapping[str, Quantizer]):
    """Every :class:`Quantizer` of a graph by FakeQuantize name, in insertion order (a
    read-only mapping; :meth:`add` and :meth:`remove` edit it)."""

    def __init__(self) -> None:
        self._by_name: dict[str, Quantizer] = {}

    def add(self, quantizer: Quantizer) -> None:
        """Record ``quantizer`` (names are unique in a graph)."""
        self._by_name[quantizer.name] = quantizer

    def __getitem__(self, name: str) -> Quantizer:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._by_name))

    def __len__(self) -> int:
        return len(self._by_name)

    def remove(self, name: str) -> None:
        """Forget the quantizer named ``name`` (its FakeQuantize was removed)."""
        del self._by_name[name]

    def copy(self) -> QuantizerTable:
        """An independent table of copied records (same node ids: for a graph copy)."""
        table = QuantizerTable()
        for q in self._by_name.values():
            table.add(dataclasses.replace(q))
        return table

    def names(self) -> list[str]:
        """Every FakeQuantize name, in insertion order."""
        return list(self._by_name)

    def live(self, graph_nodes: object) -> list[Quantizer]:
        """Records whose FakeQuantize is still in the graph (``node in graph_nodes``)."""
        return [q for q in self._by_name.values() if q.node in graph_nodes]  # type: ignore[operator]

    def weights(self, graph_nodes: object) -> list[Quantizer]:
        """Live weight quantizers."""
        return [q for q in self.live(graph_nodes) if q.is_weight]

    def activations(self, graph_nodes: object) -> list[Quantizer]:
        """Live activation and output quantizers (everything calibration sets)."""
        return [q for q in self.live(graph_nodes) if not q.is_weight]

    def by_node(self) -> dict[int, Quantizer]:
        """Records by FakeQuantize node id."""
        return {q.node: q for q in self._by_name.values()}
