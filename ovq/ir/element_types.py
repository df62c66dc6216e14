"""OpenVINO element types as they appear in IR, and how their bytes are laid out.

IR spells element types in short lowercase (``f32``, ``u4``, ``boolean``) in Const and
Parameter ``data`` and as upper-case precisions on ports (``FP32``, ``U4``, ``BOOL``).
This module knows the bit width of each, the numpy dtype used to view unpacked values,
and the byte size a constant of a given shape needs in the ``.bin``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ovq.errors import IRError


@dataclass(frozen=True, slots=True)
class ElementType:
    """One IR element type.

    Attributes:
        name: The IR ``element_type`` spelling (``f32``, ``u4``, ``string``).
        bits: Bits per element; 0 for ``string`` (variable length).
        numpy: dtype used to view the (unpacked) values, or ``None`` where numpy has
            no exact type (``bf16`` and the 8-bit float formats are exposed as raw
            unsigned integers of the same width).
        precision: The upper-case port ``precision`` spelling.
        packed: Several elements share a byte (sub-byte types, low bits first).
    """

    name: str
    bits: int
    numpy: np.dtype | None
    precision: str
    packed: bool = False

    def nbytes(self, shape: tuple[int, ...]) -> int:
        """Bytes a constant of ``shape`` occupies in the ``.bin`` (not for strings)."""
        count = math.prod(shape)
        return (count * self.bits + 7) // 8


def _et(name: str, bits: int, dtype: str | None, precision: str) -> ElementType:
    return ElementType(
        name=name,
        bits=bits,
        numpy=np.dtype(dtype) if dtype else None,
        precision=precision,
        packed=0 < bits < 8,
    )


ELEMENT_TYPES: dict[str, ElementType] = {
    et.name: et
    for et in (
        _et("f64", 64, "float64", "FP64"),
        _et("f32", 32, "float32", "FP32"),
        _et("f16", 16, "float16", "FP16"),
        _et("bf16", 16, "uint16", "BF16"),
        _et("f8e4m3", 8, "uint8", "F8E4M3"),
        _et("f8e5m2", 8, "uint8", "F8E5M2"),
        _et("f8e8m0", 8, "uint8", "F8E8M0"),
        _et("f4e2m1", 4, "uint8", "F4E2M1"),
        _et("nf4", 4, "uint8", "NF4"),
        _et("i64", 64, "int64", "I64"),
        _et("i32", 32, "int32", "I32"),
        _et("i16", 16, "int16", "I16"),
        _et("i8", 8, "int8", "I8"),
        _et("i4", 4, "int8", "I4"),
        _et("u64", 64, "uint64", "U64"),
        _et("u32", 32, "uint32", "U32"),
        _et("u16", 16, "uint16", "U16"),
        _et("u8", 8, "uint8", "U8"),
        _et("u6", 6, "uint8", "U6"),
        _et("u4", 4, "uint8", "U4"),
        _et("u3", 3, "uint8", "U3"),
        _et("u2", 2, "uint8", "U2"),
        _et("u1", 1, "uint8", "U1"),
        _et("boolean", 8, "bool", "BOOL"),
        _et("string", 0, None, "STRING"),
        # Parameters of not-yet-typed models; never a Const.
        _et("dynamic", 0, None, "DYNAMIC"),
        _et("undefined", 0, None, "UNSPECIFIED"),
    )
}

_BY_PRECISION = {et.precision: et for et in ELEMENT_TYPES.values()}
_BY_PRECISION.update({"BOOLEAN": ELEMENT_TYPES["boolean"], "UNDEFINED": ELEMENT_TYPES["undefined"]})

_FROM_NUMPY = {
    np.dtype("float64"): "f64",
    np.dtype("float32"): "f32",
    np.dtype("float16"): "f16",
    np.dtype("int64"): "i64",
    np.dtype("int32"): "i32",
    np.dtype("int16"): "i16",
    np.dtype("int8"): "i8",
    np.dtype("uint64"): "u64",
    np.dtype("uint32"): "u32",
    np.dtype("uint16"): "u16",
    np.dtype("uint8"): "u8",
    np.dtype("bool"): "boolean",
}


def element_type(name: str) -> ElementType:
    """Look up an IR element type by its ``element_type`` spelling.

    Raises:
        KeyError: ``name`` is not an element type OpenVINO writes.
    """
    return ELEMENT_TYPES[name]


def element_type_from_precision(precision: str) -> ElementType | None:
    """The element type a port ``precision`` names, or ``None`` if unknown."""
    return _BY_PRECISION.get(precision.upper())


def element_type_from_numpy(dtype: np.dtype) -> ElementType:
    """The element type for a numpy dtype (``float32`` → ``f32``).

    Raises:
        KeyError: numpy type with no IR counterpart (use an explicit element type).
    """
    if dtype.kind in "US":
        return ELEMENT_TYPES["string"]
    return ELEMENT_TYPES[_FROM_NUMPY[np.dtype(dtype)]]


def unpack_bits(raw: np.ndarray, et: ElementType, count: int) -> np.ndarray:
    """Unpack sub-byte values (low bits of each byte first) into one byte each.

    Signed 4-bit types are sign-extended into ``int8``.
    """
    bits = et.bits
    data = np.unpackbits(raw, bitorder="little")[: count * bits]
    data = data.reshape(count, bits)
    weights = (1 << np.arange(bits, dtype=np.uint16)).astype(np.uint16)
    values = (data.astype(np.uint16) * weights).sum(axis=1).astype(np.uint8)
    if et.name == "i4":
        values = values.astype(np.int8)
        values[values >= 8] -= 16
    return values


def pack_bits(values: np.ndarray, et: ElementType) -> bytes:
    """Pack one-value-per-element integers into sub-byte storage, low bits first."""
    bits = et.bits
    flat = np.asarray(values).reshape(-1).astype(np.int16) & ((1 << bits) - 1)
    expanded = ((flat[:, None] >> np.arange(bits)) & 1).astype(np.uint8).reshape(-1)
    return np.packbits(expanded, bitorder="little").tobytes()


def decode_strings(raw: bytes | memoryview) -> list[str]:
    """Decode OpenVINO's packed string constant layout.

    Layout: int32 count, then count+1 int32 offsets (the first 0, then the end of each
    string), then the UTF-8 bytes.
    """
    buf = memoryview(raw)
    if len(buf) < 4:
        raise IRError("string constant shorter than its 4-byte count")
    count = int(np.frombuffer(buf[:4], dtype="<i4")[0])
    if count < 0 or 4 + 4 * (count + 1) > len(buf):
        raise IRError(f"string constant declares {count} strings but has {len(buf)} bytes")
    offsets = np.frombuffer(buf[4 : 4 + 4 * (count + 1)], dtype="<i4")
    body = bytes(buf[4 + 4 * (count + 1) :])
    if offsets[0] != 0 or np.any(np.diff(offsets) < 0) or offsets[-1] > len(body):
        raise IRError("string constant has inconsistent offsets")
    return [body[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(count)]


def encode_strings(values: list[str]) -> bytes:
    """Encode strings into OpenVINO's packed string constant layout."""
    encoded = [v.encode("utf-8") for v in values]
    ends = np.cumsum([0] + [len(e) for e in encoded]).astype("<i4")
    return np.array([len(encoded)], dtype="<i4").tobytes() + ends.tobytes() + b"".join(encoded)
