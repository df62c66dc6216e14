"""Run the ``ovq`` command line in a subprocess, as users do (for tests and examples)."""

from __future__ import annotations

import subprocess
import sys
import tempfile

OVQ = [sys.executable, "-c", "import sys; from ovq.cli import main; sys.exit(main())"]


def run_cli(*args: object, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``ovq ARGS...``; with ``check`` assert it exited 0 (showing its stderr if not).

    The working directory is outside any checkout: ``python -c`` puts the cwd first on
    ``sys.path``, and a source tree's ``ovq/`` (no extension, no passes) would shadow the
    installed package.
    """
    proc = subprocess.run([*OVQ, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=tempfile.gettempdir())
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc
