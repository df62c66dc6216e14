"""Kernel backends: native C++ (``ovq._native``), numba, and the numpy reference.

The numpy reference defines the semantics; the numba and native backends must agree
with it (see ``tests/kernels``). Selection follows ``OVQ_KERNELS``:

* ``auto`` (default): native if the extension was built, else numba, else numpy;
* ``native`` / ``numba`` / ``numpy``: that backend or a :class:`~ovq.errors.BackendError`.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from ovq.errors import BackendError

BACKENDS = ("native", "numba", "numpy")
_ENV_VAR = "OVQ_KERNELS"


def _load_native() -> ModuleType:
    return importlib.import_module("ovq._native")


def _load_numba() -> ModuleType:
    importlib.import_module("numba")
    return importlib.import_module("ovq.kernels.numba_impl")


def _load_numpy() -> ModuleType:
    return importlib.import_module("ovq.kernels.reference")


_LOADERS = {"native": _load_native, "numba": _load_numba, "numpy": _load_numpy}


def available_backends() -> list[str]:
    """Return the backends that can be loaded on this machine, best first."""
    found = []
    for name in BACKENDS:
        try:
            _LOADERS[name]()
        except ImportError:
            continue
        found.append(name)
    return found


def select_backend(requested: str | None = None) -> str:
    """Resolve a backend name (``None`` reads ``OVQ_KERNELS``) to an available one."""
    choice = (requested or os.environ.get(_ENV_VAR) or "auto").strip().lower()
    if choice == "auto":
        for name in BACKENDS:
            try:
                _LOADERS[name]()
            except ImportError:
                continue
            return name
        raise BackendError("no kernel backend could be loaded (native, numba, numpy)")
    if choice not in _LOADERS:
        raise BackendError(
            f"{_ENV_VAR}={choice!r} is not a backend; choose auto, native, numba or numpy"
        )
    try:
        _LOADERS[choice]()
    except ImportError as exc:
        raise BackendError(f"{_ENV_VAR}={choice}: backend cannot be loaded: {exc}") from exc
    return choice


def kernels_backend() -> str:
    """Name of the kernel backend ovq uses now (``native``, ``numba`` or ``numpy``)."""
    return select_backend()
