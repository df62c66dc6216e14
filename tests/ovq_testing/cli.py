"""Run the ``ovq`` command line for tests: in this process, through the console script's
own entry point, with stdout, stderr and the exit code captured.

In-process rather than a subprocess per call: a fresh interpreter costs 1.5-2 s here
(Python, numpy, OpenVINO and ovq imports) and the CLI tests make about 35 calls, which was
a third of the fast suite's time. What a subprocess adds beyond :func:`ovq.cli.main` (the
``ovq`` console script and ``sys.exit`` of its return value) is tested once, as a user
runs it, in ``tests/cli/test_cli.py::test_console_script_is_installed``. The CLI changes
no process-wide state it does not restore (its SIGTERM handler is put back on return), so calls do
not leak into each other.
"""

from __future__ import annotations

import contextlib
import io
import subprocess


def run_cli(*args: object, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``ovq ARGS...``; with ``check`` assert it exited 0 (showing its stderr if not).

    Returns a :class:`subprocess.CompletedProcess` (``returncode``, ``stdout``,
    ``stderr``) as the subprocess version did. An exception that :func:`ovq.cli.main`
    does not turn into an exit code (a bug: users would see a traceback) propagates.
    """
    from ovq.cli import main

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    proc = subprocess.CompletedProcess(["ovq", *argv], code, out.getvalue(), err.getvalue())
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc
