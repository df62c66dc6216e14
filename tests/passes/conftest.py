"""Make the built-in fusion rules importable by tests under a short name."""

from __future__ import annotations

import sys

import ovq.passes.fusion.linear_chains as _linear_chains

sys.modules.setdefault("passes_fusion_rules", _linear_chains)
