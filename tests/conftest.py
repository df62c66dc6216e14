"""Shared test set-up, and the check that the ovq under test is an installed one."""

from __future__ import annotations

import os

import pytest

# Keep OpenVINO and numba from oversubscribing the 2-core CI machines.
os.environ.setdefault("OMP_NUM_THREADS", "2")

# Test helpers (asset builders, the CLI runner), imported as `ovq_testing`; no tests inside.
collect_ignore = ["ovq_testing"]


def pytest_configure(config: pytest.Config) -> None:
    try:
        import ovq  # noqa: F401
    except ImportError as exc:
        # Typically ovq/_install_check.py refusing the bare source folder (`python -m
        # pytest` in a checkout without `pip install -e .`): say it once and stop, rather
        # than fail every test module's collection.
        pytest.exit(f"cannot import ovq, no test can run.\n{exc}", returncode=pytest.ExitCode.USAGE_ERROR)


def pytest_report_header(config: pytest.Config) -> str:
    """Which ovq is under test: an install of this checkout's edits, or a wheel's copy."""
    import importlib.metadata
    import json

    import ovq

    text = importlib.metadata.distribution("ovq").read_text("direct_url.json") or "{}"
    editable = json.loads(text).get("dir_info", {}).get("editable", False)
    where = os.path.dirname(ovq.__file__)
    how = ("editable install: testing this checkout" if editable else
           "installed copy: edits to the checkout are tested after reinstalling (or `pip install -e .`)")
    return f"ovq {ovq.__version__} from {where} ({how}); kernels: {ovq.kernels_backend()}"
