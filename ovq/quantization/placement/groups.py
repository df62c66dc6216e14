"""Unified-scale groups: quantizers that must end up with one range.

Concat inputs, recurrent X/H pairs and recurrent W/R pairs share a range. The planner
hands out integer group ids and joins groups when quantizers carrying them merge on one
tensor; :class:`UnifiedGroups` is the union-find over those ids. Activation and weight
commands draw from the same id space.
"""

from __future__ import annotations

from collections.abc import Iterable


class UnifiedGroups:
    """A union-find over integer group ids, handed out from 0 upwards."""

    def __init__(self) -> None:
        self._parent: dict[int, int] = {}
        self._next = 0

    def new(self) -> int:
        """A fresh group id (its own root)."""
        gid = self._next
        self._next += 1
        self._parent[gid] = gid
        return gid

    def find(self, x: int) -> int:
        """The root id of ``x``'s group."""
        while self._parent.get(x, x) != x:
            x = self._parent[x]
        return x

    def union(self, groups: Iterable[int]) -> frozenset[int]:
        """Join ``groups`` under the root of the first; return ``{root}`` (empty for no groups)."""
        gs = [self.find(x) for x in groups]
        if not gs:
            return frozenset()
        root = gs[0]
        for other in gs[1:]:
            if other != root:
                self._parent[other] = root
        return frozenset({root})
