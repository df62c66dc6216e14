"""Which op types a hardware descriptor may name: OpenVINO's, ovq's pseudo-types, POT's
legacy names and the descriptor's own ``custom_op_types``.

A misspelled type (``Convolushun``) would match no layer and silently leave every layer
of that kind in float, so :func:`check_op_type` refuses it with a did-you-mean. An op
from an OpenVINO extension (not in any opset) is declared in the descriptor's
``custom_op_types`` list.
"""

from __future__ import annotations

import difflib
import functools
import tomllib
from collections.abc import Collection

PSEUDO_TYPES = frozenset({"DepthWiseConvolution", "Embedding"})
"""Types ovq's placement derives from a real op (see ``ovq.quantization.placement.view``)."""

LEGACY_TYPES = frozenset({"Crop", "Flatten", "Power", "ReLU"})
"""Names POT's hardware configs still list from IR versions before opsets; they match no
layer of a model OpenVINO reads today and are accepted so POT's files import unchanged."""


@functools.lru_cache(maxsize=1)
def _factories() -> tuple:
    from openvino.utils.node_factory import NodeFactory

    factories = []
    for version in range(1, 33):
        try:
            factories.append(NodeFactory(f"opset{version}"))
        except Exception:  # noqa: BLE001 - OpenVINO raises its own types for an unknown opset
            break
    return tuple(factories)


@functools.lru_cache(maxsize=512)
def is_openvino_type(type_name: str) -> bool:
    """True when some OpenVINO opset (1, 2, ...) has an op of that type (IR or OV spelling)."""
    from ovq.ir.graph import IR_TO_OV_TYPE

    name = IR_TO_OV_TYPE.get(type_name, type_name)
    if name in ("Constant", "Parameter", "Result"):
        return True
    for factory in _factories():
        try:
            factory.create(name)
            return True
        except Exception:  # noqa: BLE001 - "op_node != nullptr" means not in this opset
            continue
    return False


def is_known(type_name: str) -> bool:
    """An OpenVINO op type, an ovq pseudo-type or a POT legacy name."""
    return type_name in PSEUDO_TYPES or type_name in LEGACY_TYPES or is_openvino_type(type_name)


@functools.lru_cache(maxsize=1)
def _suggestion_pool() -> tuple[str, ...]:
    """Types named by the shipped descriptors (the ones a user is likely to mean)."""
    from ovq.hw.loader import _shipped_dir

    pool = set(PSEUDO_TYPES) | set(LEGACY_TYPES)
    for path in _shipped_dir().glob("*.toml"):
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        for rule in raw.get("ops", ()):
            pool.update(rule.get("types", ()))
        pool.update(raw.get("agnostic", ()))
    pool.update(("Parameter", "Result", "Const", "Convert", "FakeQuantize", "Gather", "Softmax", "Relu",
                 "Sigmoid", "Tanh", "LSTMSequence", "GRUSequence", "RNNSequence", "LSTMCell", "GRUCell",
                 "ScaledDotProductAttention", "Einsum", "Select", "ConvolutionBackpropData"))
    return tuple(sorted(pool))


def did_you_mean(type_name: str) -> str:
    """`` (did you mean 'X'?)`` for the closest known type, or an empty string."""
    pool = _suggestion_pool()
    folded = {t.lower(): t for t in pool}
    if type_name.lower() in folded:
        return f" (did you mean {folded[type_name.lower()]!r}?)"
    close = difflib.get_close_matches(type_name, pool, n=2, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"


def check_op_type(type_name: str, custom: Collection[str], where: str) -> str | None:
    """Why ``type_name`` is not acceptable at ``where`` (a message), or ``None`` when it is."""
    if type_name in custom or is_known(type_name):
        return None
    return (
        f"{where}: unknown op type {type_name!r}{did_you_mean(type_name)}; "
        "an op from an OpenVINO extension must be declared in custom_op_types"
    )
