"""Strided-layout planning shared by the numba and native backends.

A kernel sees each operand as a flat 1-D view of its memory (starting at the lowest
address the operand touches) plus, for the kept ("channel") index ``k``, an element
offset ``koff[k]`` and, for the reduced part, a small nd box ``rshape``/``rstrides``
(element strides, possibly negative, adjacent dims collapsed). No data is copied unless
a stride is not a multiple of the item size (then one contiguous copy is made).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided


@dataclass(frozen=True)
class Plan:
    """How to walk ``len(flats)`` same-shaped operands (see module docstring)."""

    kshape: tuple[int, ...]
    flats: tuple[np.ndarray, ...]
    koffs: tuple[np.ndarray, ...]  # int64 (K,) per operand
    rshape: np.ndarray  # int64 (nd,), nd >= 1
    rstrides: tuple[np.ndarray, ...]  # int64 (nd,) per operand

    @property
    def k(self) -> int:
        return int(np.prod(self.kshape, dtype=np.int64))

    @property
    def r(self) -> int:
        return int(np.prod(self.rshape, dtype=np.int64))


def is_bfloat16(dtype: np.dtype) -> bool:
    """``dtype`` is ml_dtypes' bfloat16 (checked by name: importing ml_dtypes costs ~0.6 s
    of every cold start, and a bfloat16 array cannot exist unless its caller imported it)."""
    return dtype.name == "bfloat16"


def bfloat16() -> np.dtype:
    """ml_dtypes' bfloat16 dtype (imported on first use)."""
    import ml_dtypes

    return np.dtype(ml_dtypes.bfloat16)


def _flat(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Flat view from the lowest address, element strides and the base offset."""
    item = x.itemsize
    if any(s % item for s in x.strides):
        x = np.ascontiguousarray(x)
    strides = np.asarray(x.strides, np.int64) // item
    shape = np.asarray(x.shape, np.int64)
    flip = tuple(slice(None, None, -1) if s < 0 else slice(None) for s in strides)
    low = x[flip] if any(s < 0 for s in strides) else x
    span = 1 + int(np.sum((shape - 1) * np.abs(strides))) if x.size else 0
    flat = as_strided(low, shape=(span,), strides=(item,), writeable=low.flags.writeable)
    base = int(np.sum(np.where(strides < 0, (shape - 1) * -strides, 0)))
    return flat, strides, base


def plan(arrays: list[np.ndarray], axis: tuple[int, ...]) -> Plan:
    """Plan a walk over ``arrays`` (same shape, non-empty) keeping ``axis`` in order."""
    shape = arrays[0].shape
    parts = [_flat(a) for a in arrays]
    kshape = tuple(shape[a] for a in axis)
    koffs = []
    for _, strides, base in parts:
        off = np.full(kshape, base, np.int64)
        for j, a in enumerate(axis):
            idx = np.arange(shape[a], dtype=np.int64) * strides[a]
            off = off + idx.reshape([-1 if i == j else 1 for i in range(len(axis))])
        koffs.append(np.ascontiguousarray(off.reshape(-1)))
    rest = [d for d in range(len(shape)) if d not in axis and shape[d] != 1]
    s0 = parts[0][1]
    rest.sort(key=lambda d: -abs(int(s0[d])))
    dims = [[shape[d], *[int(p[1][d]) for p in parts]] for d in rest] or [[1, *[0] * len(parts)]]
    merged = [dims[0]]
    for d in dims[1:]:
        prev = merged[-1]
        if all(prev[1 + i] == d[1 + i] * d[0] for i in range(len(parts))):
            merged[-1] = [prev[0] * d[0], *d[1:]]
        else:
            merged.append(d)
    rshape = np.array([m[0] for m in merged], np.int64)
    rstrides = tuple(np.array([m[1 + i] for m in merged], np.int64) for i in range(len(parts)))
    return Plan(kshape, tuple(p[0] for p in parts), tuple(koffs), rshape, rstrides)


def range_constants(x_shape: tuple[int, ...], ranges, levels: int, flavor: str):
    """FakeQuantize constants for kernels walking ``x`` with ranges along <= 1 axis.

    Returns:
        ``(axis, consts)`` with ``axis`` ``()`` or ``(a,)`` and ``consts`` a float32
        ``(6, K or 1)`` array of the rows of :func:`ovq.kernels.reference.fq_constants`,
        or None if the ranges change the output shape or vary along several axes (the
        caller then uses the reference).
    """
    from ovq.kernels.reference import fq_constants

    ranges = [np.asarray(r, np.float32) for r in ranges]
    shape = np.broadcast_shapes(tuple(x_shape), *(r.shape for r in ranges))
    if shape != tuple(x_shape):
        return None
    nd = len(shape)
    full = [r.reshape((1,) * (nd - r.ndim) + r.shape) for r in ranges]
    varying = {d for r in full for d, n in enumerate(r.shape) if n != 1}
    if len(varying) > 1:
        return None
    consts = fq_constants(*full, levels, flavor)
    if not varying:
        c = np.stack([np.asarray(v, np.float32).reshape(-1)[:1] for v in consts])
        return (), np.ascontiguousarray(c, np.float32)
    ax = varying.pop()
    target = tuple(shape[d] if d == ax else 1 for d in range(nd))
    c = np.stack([np.broadcast_to(v, target).reshape(-1) for v in consts])
    return (ax,), np.ascontiguousarray(c, np.float32)
