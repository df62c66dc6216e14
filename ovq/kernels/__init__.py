"""Kernel backends: native C++ (``ovq._native``), numba, and the numpy reference.

The numpy reference defines the semantics; the numba and native backends must agree
with it (see ``tests/kernels``). Selection follows ``OVQ_KERNELS``:

* ``auto`` (default): native if the extension was built, else numba, else numpy;
* ``native`` / ``numba`` / ``numpy``: that backend or a :class:`~ovq.errors.BackendError`.

Use :func:`get_kernels` for a :class:`~ovq.kernels.api.Kernels` object bound to one
backend, or the module-level functions below (``minmax``, ``reduce_state``,
``quantile``, ``histogram``, ``fake_quantize``, ``quantize``, ``dequantize``,
``quantization_error``, ...) which use the active
backend. Threads: :func:`set_num_threads` / ``OVQ_NUM_THREADS`` (native backend).
Nothing heavy (numba, the extension) is imported until a kernel is first used.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from ovq.errors import BackendError

BACKENDS = ("native", "numba", "numpy")
_ENV_VAR = "OVQ_KERNELS"


def _load_native() -> ModuleType:
    importlib.import_module("ovq._native")
    return importlib.import_module("ovq.kernels.native")


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


_CACHE: dict[str, object] = {}


def get_kernels(backend: str | None = None):
    """Kernel API bound to ``backend`` (None: ``OVQ_KERNELS`` / auto).

    Returns:
        A :class:`ovq.kernels.api.Kernels`; every backend has the same methods and,
        per the parity tests, the same results.

    Raises:
        BackendError: the backend is unknown or cannot be loaded.
    """
    from ovq.kernels.api import Kernels

    name = select_backend(backend)
    k = _CACHE.get(name)
    if k is None:
        k = _CACHE[name] = Kernels(name, _LOADERS[name]())
    return k


def set_num_threads(n: int) -> None:
    """Threads for native kernels (``n <= 0``: default, ``OVQ_NUM_THREADS`` or all cores)."""
    try:
        _load_native()
    except ImportError:
        return
    importlib.import_module("ovq._native").set_num_threads(int(n))


def get_num_threads() -> int:
    """Threads the native kernels use (1 if the extension is not built)."""
    try:
        _load_native()
    except ImportError:
        return 1
    return int(importlib.import_module("ovq._native").get_num_threads())


def set_generic_simd(generic: bool = True) -> None:
    """Force the portable (non-AVX2) native code path, e.g. to test it.

    ``OVQ_NATIVE_ISA=generic`` does the same at import time.
    """
    importlib.import_module("ovq._native").set_simd(not generic)


def _forward(name: str):
    def fn(*args, **kwargs):
        return getattr(get_kernels(), name)(*args, **kwargs)

    fn.__name__ = name
    fn.__doc__ = f"``get_kernels().{name}(...)`` on the active backend."
    return fn


_API = ("minmax", "reduce_min", "reduce_max", "reduce_mean", "reduce_state", "per_sample", "quantile",
        "histogram", "fake_quantize", "quantize", "dequantize", "quantization_error",
        "compress_groups", "pack_nibbles", "int8_asym_error", "awq_errors", "group_output_error")
for _n in _API:
    globals()[_n] = _forward(_n)
del _n


def __getattr__(name: str):
    if name in ("ReduceState", "Histogram", "Kernels"):
        from ovq.kernels import api

        return getattr(api, name)
    raise AttributeError(name)
