"""Headless Chromium for the ``browser`` tests (the Debian package ``chromium``; ``.ci/run``
installs it): :func:`load` gives a page's DOM after its scripts ran, and its console lines."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

__all__ = ["chromium", "load"]


def chromium() -> str:
    """The Chromium executable; fails the test when there is none."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("the browser tests need Chromium: apt-get install -y chromium (.ci/run installs it)")
    return exe


def load(page: Path, *, extra_script: str = "") -> tuple[str, list[str]]:
    """(DOM after the scripts ran, console lines) of ``page`` in headless Chromium.

    ``extra_script`` runs at the end of the page's body (from a copy of the page beside
    it, ``<stem>.probe.html``, so relative links resolve as from the page). If it
    navigates (a click on a link), the DOM is the one of the page it went to.
    """
    if extra_script:
        copy = page.with_name(page.stem + ".probe.html")
        copy.write_text(page.read_text().replace("</body>", f"<script>{extra_script}</script></body>"))
        page = copy
    proc = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                           "--v=0", "--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    return proc.stdout, console
