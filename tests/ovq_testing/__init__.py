"""Helpers for ovq's tests and benchmarks: offline model assets (:mod:`ovq_testing.assets`)
and running the command line (:mod:`ovq_testing.cli`).

Not part of the installed ``ovq``: they are test code (819 lines of model builders that
users never need), kept in ``tests/`` and put on ``sys.path`` by pytest's ``pythonpath``
setting; the bench scripts and ``.ci/install-assets.sh`` add ``tests/`` themselves.
Importing this package imports neither torch nor any model package; they are only needed
when an asset is first built.
"""

from __future__ import annotations

from ovq_testing.assets import ASSETS, AssetSpec, AssetUnavailable, asset_path, cache_dir

__all__ = ["ASSETS", "AssetSpec", "AssetUnavailable", "asset_path", "cache_dir"]
