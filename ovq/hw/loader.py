"""Load, validate and import hardware descriptors.

Targets are TOML files in ``ovq/hw_configs`` (shipped from the repository's
``hw_configs/``). Wherever a target name is accepted, a path works too: a ``.toml`` in
our schema, a ``.json`` in our schema, or a POT hardware-config ``.json`` (recognised by
its ``target_device`` and ``config`` keys) which is imported into our schema. Every
problem raises :class:`HardwareDescriptorError` naming the file and the field, e.g.
``npu.toml: ops[3].weights: unknown space 'q8_x'``.
"""

from __future__ import annotations

import functools
import importlib.resources
import tomllib
from pathlib import Path
from typing import Any

import jsonschema

from ovq import lenient_json
from ovq.errors import OvqError
from ovq.files import MAX_CONFIG_BYTES, read_input
from ovq.hw import op_types
from ovq.hw.descriptor import PLACEMENT_RULES, HardwareDescriptor, OpRule, QuantSpace
from ovq.hw.schema import DESCRIPTOR, SCHEMA_VERSION
from ovq.ir.graph import canonical_ir_type

ALIASES = {"vpu": "npu", "gna3.5": "gna3", "gna2": "gna"}


class HardwareDescriptorError(OvqError):
    """A hardware descriptor is missing, malformed or inconsistent, or a target is unknown."""


def _shipped_dir() -> Path:
    return Path(str(importlib.resources.files("ovq") / "hw_configs"))


def list_targets() -> list[str]:
    """Names of the shipped targets (plus accepted aliases are in :data:`ALIASES`)."""
    return sorted(p.stem for p in _shipped_dir().glob("*.toml"))


def _path_of(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    candidate = Path(text)
    if candidate.suffix.lower() in (".toml", ".json") or candidate.exists():
        if not candidate.exists():
            raise HardwareDescriptorError(f"{candidate}: no such hardware descriptor file")
        return candidate
    key = ALIASES.get(text.lower(), text.lower())
    path = _shipped_dir() / f"{key}.toml"
    if not path.exists():
        raise HardwareDescriptorError(
            f"unknown target {text!r}; valid targets: {', '.join(list_targets())} "
            f"(aliases: {', '.join(f'{a}->{b}' for a, b in sorted(ALIASES.items()))}) or a descriptor file path"
        )
    return path


def _read_raw(path: Path) -> dict[str, Any]:
    if path.suffix.lower() == ".json":
        # POT's own hardware configs carry comments and trailing commas (POT reads them with jstyleson).
        raw = lenient_json.read(path, HardwareDescriptorError, label=path.name, what="descriptor")
    else:
        data = read_input(path, HardwareDescriptorError, limit=MAX_CONFIG_BYTES, what="descriptor")
        try:
            raw = tomllib.loads(data.decode("utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise HardwareDescriptorError(f"{path.name}: not valid TOML: {exc}") from None
        except UnicodeDecodeError as exc:
            raise HardwareDescriptorError(f"{path.name}: cannot read: {exc}") from None
    if not isinstance(raw, dict):
        raise HardwareDescriptorError(f"{path.name}: top level must be an object")
    if "target_device" in raw and "config" in raw:
        raw = import_pot_config(raw, path.name)
    return raw


def _field_path(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<top>"


def _validate_structure(raw: dict[str, Any], label: str) -> None:
    validator = jsonschema.Draft202012Validator(DESCRIPTOR)
    errors = sorted(validator.iter_errors(raw), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = _field_path(err.absolute_path)
        message = err.message
        if err.validator == "required":
            message = f"missing field: {message.split(' is a required')[0]}"
        elif err.validator == "additionalProperties":
            message = f"unknown field: {message}"
        raise HardwareDescriptorError(f"{label}: {where}: {message}")
    if raw["schema_version"] != SCHEMA_VERSION:
        raise HardwareDescriptorError(
            f"{label}: schema_version: {raw['schema_version']} is not supported (this ovq reads {SCHEMA_VERSION})"
        )


def _as_tuple(value: Any) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, list) else (value,)


def _space(name: str, raw: dict[str, Any], label: str) -> QuantSpace:
    space = QuantSpace(
        name=name,
        bits=raw["bits"],
        modes=_as_tuple(raw["mode"]),
        granularities=_as_tuple(raw["granularity"]),
        level_low=raw.get("level_low"),
        level_high=raw.get("level_high"),
        unified_zeropoint=raw.get("unified_zeropoint", False),
    )
    where = f"{label}: spaces.{name}"
    if (space.level_low is None) != (space.level_high is None):
        raise HardwareDescriptorError(f"{where}: level_low and level_high must be given together")
    if space.level_low is not None:
        assert space.level_high is not None
        if space.level_low >= space.level_high:
            raise HardwareDescriptorError(f"{where}: level_low {space.level_low} must be below level_high {space.level_high}")
        if space.level_high - space.level_low + 1 > 2**space.bits:
            raise HardwareDescriptorError(
                f"{where}: levels {space.level_low}..{space.level_high} do not fit in {space.bits} bits"
            )
    return space


@functools.lru_cache(maxsize=64)
def _load_cached(path_text: str, depth: int) -> HardwareDescriptor:
    path = Path(path_text)
    label = path.name
    raw = _read_raw(path)
    _validate_structure(raw, label)
    spaces: dict[str, QuantSpace] = {}
    rules: list[OpRule] = []
    agnostic: set[str] = set()
    ignored: list[str] = []
    placement_rules: list[str] = []
    primary = raw.get("primary_bitwidth")
    priority = tuple(raw.get("input_priority_types", ()))
    description = raw.get("description", "")
    lpt = raw.get("low_precision_transformations")
    overrides: dict[str, str] = {}
    custom = set(raw.get("custom_op_types", ()))
    for i, t in enumerate(raw.get("custom_op_types", ())):
        if op_types.is_openvino_type(t):
            raise HardwareDescriptorError(
                f"{label}: custom_op_types[{i}]: {t!r} is an OpenVINO op type; list only extension ops there"
            )
    if "extends" in raw:
        if depth > 8:
            raise HardwareDescriptorError(f"{label}: extends: chain too deep (a cycle?)")
        try:
            parent_path = _path_of(raw["extends"])
        except HardwareDescriptorError as exc:
            raise HardwareDescriptorError(f"{label}: extends: {exc}") from None
        parent = _load_cached(str(parent_path.resolve()), depth + 1)
        custom |= parent.custom_op_types
        spaces.update(parent.spaces)
        removed = {canonical_ir_type(t) for t in raw.get("remove_ops", ())}
        for rule in parent.ops:
            kept = tuple(t for t in rule.types if t not in removed)
            if kept:
                rules.append(OpRule(kept, rule.activations, rule.weights, rule.outputs, rule.unified_scales))
        agnostic |= parent.agnostic - removed
        dropped = set(raw.get("remove_ignored_patterns", ()))
        ignored.extend(p for p in parent.ignored_patterns if p not in dropped)
        placement_rules.extend(parent.placement_rules)
        primary = primary or parent.primary_bitwidth
        priority = priority or parent.input_priority_types
        description = description or parent.description
        lpt = parent.low_precision_transformations if lpt is None else lpt
        overrides.update(parent.preset_overrides)
    for name, body in raw.get("spaces", {}).items():
        spaces[name] = _space(name, body, label)
    _check_op_types(raw, custom, label)
    own_rules = []
    for i, body in enumerate(raw.get("ops", [])):
        groups = {}
        for group in ("activations", "weights", "outputs"):
            refs = body.get(group, [])
            for ref in refs:
                if ref not in spaces:
                    raise HardwareDescriptorError(
                        f"{label}: ops[{i}].{group}: unknown space {ref!r} (known: {', '.join(sorted(spaces))})"
                    )
            groups[group] = tuple(spaces[r] for r in refs)
        unified = body.get("unified_scales")
        if isinstance(unified, list):
            unified = tuple(tuple(pair) for pair in unified)
        own_rules.append(OpRule(tuple(canonical_ir_type(t) for t in body["types"]), unified_scales=unified, **groups))
    # The file's own rules take precedence over inherited ones for the same types.
    own_types = {t for r in own_rules for t in r.types}
    rules = own_rules + [
        OpRule(tuple(t for t in r.types if t not in own_types), r.activations, r.weights, r.outputs, r.unified_scales)
        for r in rules
        if any(t not in own_types for t in r.types)
    ]
    agnostic |= {canonical_ir_type(t) for t in raw.get("agnostic", ())}
    seen: dict[str, int] = {}
    for i, rule in enumerate(own_rules):
        for t in rule.types:
            if t in seen:
                raise HardwareDescriptorError(f"{label}: ops[{i}].types: {t!r} already has a rule in ops[{seen[t]}]")
            seen[t] = i
    clash = agnostic & own_types
    if clash:
        raise HardwareDescriptorError(f"{label}: agnostic: {sorted(clash)} also have quantization rules")
    ignored.extend(raw.get("ignored_patterns", ()))
    for i, rule_name in enumerate(raw.get("placement_rules", ())):
        if rule_name not in PLACEMENT_RULES:
            raise HardwareDescriptorError(
                f"{label}: placement_rules[{i}]: unknown rule {rule_name!r} (known: {', '.join(sorted(PLACEMENT_RULES))})"
            )
        placement_rules.append(rule_name)
    return HardwareDescriptor(
        target=raw["target"],
        source=str(path),
        description=description,
        primary_bitwidth=primary or 8,
        spaces=spaces,
        ops=tuple(rules),
        agnostic=frozenset(agnostic),
        ignored_patterns=tuple(dict.fromkeys(ignored)),
        input_priority_types=priority,
        placement_rules=tuple(dict.fromkeys(placement_rules)),
        low_precision_transformations=bool(lpt),
        preset_overrides={**overrides, **raw.get("preset_overrides", {})},
        custom_op_types=frozenset(custom),
    )


def _check_op_types(raw: dict[str, Any], custom: set[str], label: str) -> None:
    """Every op type the file names is OpenVINO's, a pseudo/legacy type or declared custom."""
    named = [(f"ops[{i}].types", t) for i, body in enumerate(raw.get("ops", ())) for t in body["types"]]
    for key in ("agnostic", "remove_ops", "input_priority_types"):
        named += [(f"{key}[{i}]", t) for i, t in enumerate(raw.get(key, ()))]
    for where, t in named:
        problem = op_types.check_op_type(t, custom, f"{label}: {where}")
        if problem:
            raise HardwareDescriptorError(problem)


def load_descriptor(target: str | Path | HardwareDescriptor) -> HardwareDescriptor:
    """Load a target by name (``cpu``, ``GPU``, ``vpu``...) or from a file path.

    Raises:
        HardwareDescriptorError: unknown target (listing the valid ones) or a bad file.
    """
    if isinstance(target, HardwareDescriptor):
        return target
    return _load_cached(str(_path_of(target).resolve()), 0)


POT_LPT_DEVICES = ("any", "cpu", "cpu_spr", "gpu")
"""POT ``target_device`` values whose runtime applies Low Precision Transformations."""


def import_pot_config(raw: dict[str, Any], label: str = "<pot>") -> dict[str, Any]:
    """Translate a POT hardware-config JSON object into our schema (as a raw dict).

    POT's aliases become spaces; inline configs get synthesized space names; entries
    without ``quantization`` become agnostic types; ``scales: unified`` and
    ``unified_scales`` become ``unified_scales``.
    """
    try:
        quant = raw["config"]["quantization"]
        operations = raw["operations"]
    except (KeyError, TypeError):
        raise HardwareDescriptorError(f"{label}: POT config needs config.quantization and operations") from None
    spaces: dict[str, Any] = {}

    def space_from(body: dict[str, Any], name: str) -> str:
        entry = {k: body[k] for k in ("bits", "mode", "granularity", "level_low", "level_high", "unified_zeropoint") if k in body}
        spaces[name] = entry
        return name

    for name, body in quant.items():
        if not isinstance(body, dict):
            raise HardwareDescriptorError(f"{label}: config.quantization.{name}: expected an object")
        space_from(body, name)
    ops: list[dict[str, Any]] = []
    agnostic: list[str] = []
    custom = raw.get("custom_op_types", [])
    if not isinstance(custom, list) or not all(isinstance(t, str) for t in custom):
        raise HardwareDescriptorError(f"{label}: custom_op_types: expected a list of op type names")
    for i, op in enumerate(operations):
        if not isinstance(op, dict) or not isinstance(op.get("type"), str):
            raise HardwareDescriptorError(f"{label}: operations[{i}]: needs a 'type'")
        problem = op_types.check_op_type(op["type"], custom, f"{label}: operations[{i}].type")
        if problem:
            raise HardwareDescriptorError(problem)
        q = op.get("quantization") or {}
        attrs = op.get("attributes", {})
        unified = attrs.get("scales") == "unified" or "unified_scales" in attrs
        if not q and not unified:
            agnostic.append(op["type"])
            continue
        entry: dict[str, Any] = {"types": [op["type"]]}
        for group in ("activations", "weights", "outputs"):
            if group not in q:
                continue
            refs = q[group] if isinstance(q[group], list) else [q[group]]
            names = []
            for k, ref in enumerate(refs):
                if isinstance(ref, str):
                    names.append(ref)
                elif isinstance(ref, dict):
                    names.append(space_from(ref, f"{op['type']}_{group}_{k}"))
                else:
                    raise HardwareDescriptorError(f"{label}: operations[{i}].quantization.{group}: bad entry {ref!r}")
            entry[group] = names
        if attrs.get("scales") == "unified" or attrs.get("unified_scales") == "all":
            entry["unified_scales"] = "all"
        elif isinstance(attrs.get("unified_scales"), list):
            entry["unified_scales"] = attrs["unified_scales"]
        ops.append(entry)
    out: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "target": str(raw["target_device"]).lower(),
        "description": f"imported from POT hardware config {label}",
        "spaces": spaces,
        "ops": ops,
        "agnostic": agnostic,
    }
    if custom:
        out["custom_op_types"] = custom
    if "primary_bitwidth" in raw:
        out["primary_bitwidth"] = raw["primary_bitwidth"]
    if "input_priority_types" in raw:
        out["input_priority_types"] = raw["input_priority_types"]
    # POT's hardware configs carry no runtime facts; POT derived them from the device.
    device = out["target"]
    if device in POT_LPT_DEVICES:
        out["low_precision_transformations"] = True
        out["preset_overrides"] = {"accuracy": "mixed"}
    elif device.startswith("gna"):
        out["preset_overrides"] = {"mixed": "accuracy"}
    return out


def validate_file(path: str | Path) -> HardwareDescriptor:
    """Validate a descriptor file (ours or POT's) and return it loaded."""
    return load_descriptor(Path(path))
