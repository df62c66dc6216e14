"""Refuse to run from the repository's bare ``ovq/`` folder, naming the fix.

``passes/`` and ``hw_configs/`` sit at the top of the repository and the native kernels
are built by CMake: only an install maps them into the package (a wheel copies them to
``ovq/passes``, ``ovq/hw_configs`` and ``ovq/_native*.so``; an editable install's import
hook maps them to the checkout and its build folder). Python started inside the checkout
(``python -c``, ``python -m pytest``) finds the bare folder first on ``sys.path``, and it
would half-work: no passes, numba instead of the native kernels. numpy refuses its source
folder the same way.

``ovq/__init__.py`` imports this module first. The check costs one path lookup and
imports nothing.
"""

from __future__ import annotations

import importlib.util
import os
import sys


def _check() -> None:
    if importlib.util.find_spec("ovq.passes") is not None:
        return
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    raise ImportError(
        f"ovq: {here} is ovq's source folder, not an installed ovq: the passes (ovq.passes), "
        "the hardware descriptors (ovq/hw_configs) and the native kernels (ovq._native) "
        "exist only in an install.\n"
        "  Developer set-up (Python edits apply at once; re-run it after changing csrc/):\n"
        f"    cd {root} && {sys.executable} -m pip install -e '.[test]'\n"
        "  To use an ovq installed from a wheel instead, start Python outside the checkout: "
        "`python -c` and `python -m pytest` put the current folder first on sys.path, "
        "`.venv/bin/pytest` does not."
    )


_check()
