"""Shared test fixtures."""

from __future__ import annotations

import os

# Keep OpenVINO and numba from oversubscribing the 2-core CI machines.
os.environ.setdefault("OMP_NUM_THREADS", "2")

# Test helpers (asset builders, the CLI runner), imported as `ovq_testing`; no tests inside.
collect_ignore = ["ovq_testing"]
