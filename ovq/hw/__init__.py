"""Declarative hardware descriptors (``hw_configs/*.toml``): what each target can quantize."""

from ovq.hw.descriptor import HardwareDescriptor, OpRule, QuantSpace
from ovq.hw.loader import (
    ALIASES,
    HardwareDescriptorError,
    import_pot_config,
    list_targets,
    load_descriptor,
    validate_file,
)

__all__ = [
    "ALIASES",
    "HardwareDescriptor",
    "HardwareDescriptorError",
    "OpRule",
    "QuantSpace",
    "import_pot_config",
    "list_targets",
    "load_descriptor",
    "validate_file",
]
