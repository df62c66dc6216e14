"""The descriptor schema (version 1), as JSON Schema for structure.

Cross-references (space names used by ops, ``extends`` targets) and value rules
(levels fit the bit width, ...) are checked in :mod:`ovq.hw.loader`, which turns every
problem into a message naming the file and the field.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

_NAMES = {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1}
_SPACE_REFS = {"type": "array", "items": {"type": "string", "minLength": 1}}
_MODES = {"enum": ["symmetric", "asymmetric"]}
_GRANULARITIES = {"enum": ["pertensor", "perchannel"]}

SPACE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["bits", "mode", "granularity"],
    "properties": {
        "bits": {"type": "integer", "enum": [2, 4, 8, 16, 32]},
        "mode": {"oneOf": [_MODES, {"type": "array", "items": _MODES, "minItems": 1}]},
        "granularity": {"oneOf": [_GRANULARITIES, {"type": "array", "items": _GRANULARITIES, "minItems": 1}]},
        "level_low": {"type": "integer"},
        "level_high": {"type": "integer"},
        "unified_zeropoint": {"type": "boolean"},
        "description": {"type": "string"},
    },
}

OP = {
    "type": "object",
    "additionalProperties": False,
    "required": ["types"],
    "properties": {
        "types": _NAMES,
        "activations": _SPACE_REFS,
        "weights": _SPACE_REFS,
        "outputs": _SPACE_REFS,
        "unified_scales": {
            "oneOf": [
                {"const": "all"},
                {"type": "array", "items": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 2}},
            ]
        },
        "description": {"type": "string"},
    },
}

DESCRIPTOR = {
    "type": "object",
    "additionalProperties": False,
    "required": ["schema_version", "target"],
    "properties": {
        "schema_version": {"type": "integer"},
        "target": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "extends": {"type": "string"},
        "primary_bitwidth": {"type": "integer", "enum": [8, 16]},
        "input_priority_types": {"type": "array", "items": {"type": "string"}},
        "spaces": {"type": "object", "additionalProperties": SPACE},
        "ops": {"type": "array", "items": OP},
        "agnostic": {"type": "array", "items": {"type": "string"}},
        "custom_op_types": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "remove_ops": {"type": "array", "items": {"type": "string"}},
        "ignored_patterns": {"type": "array", "items": {"type": "string"}},
        "remove_ignored_patterns": {"type": "array", "items": {"type": "string"}},
        "placement_rules": {"type": "array", "items": {"type": "string"}},
        "low_precision_transformations": {"type": "boolean"},
        "preset_overrides": {
            "type": "object",
            "additionalProperties": {"enum": ["performance", "mixed", "accuracy"]},
            "propertyNames": {"enum": ["performance", "mixed", "accuracy"]},
        },
    },
}
