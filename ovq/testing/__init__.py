"""Helpers for ovq's tests and benchmarks (offline model assets, data).

See :mod:`ovq.testing.assets`. Importing this package imports neither torch nor any
model package; they are only needed when an asset is first built.
"""

from __future__ import annotations

from ovq.testing.assets import ASSETS, AssetSpec, AssetUnavailable, asset_path, cache_dir

__all__ = ["ASSETS", "AssetSpec", "AssetUnavailable", "asset_path", "cache_dir"]
