"""The built wheel ships everything, and `import ovq` stays light and native-optional."""

from __future__ import annotations

import os
import subprocess
import tempfile
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Python source that makes `import ovq._native` fail, as on a machine without the extension.
BLOCK_NATIVE = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'ovq._native': raise ImportError('blocked for test')\n"
        "sys.meta_path.insert(0, Block())\n"
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel CI built (``OVQ_WHEEL``), or one built now from the checkout.

    The build is isolated (pip installs the build requirements into a temporary
    environment), as the README's ``pip install .`` is: the test venv need not hold
    scikit-build-core, pybind11, cmake or ninja.
    """
    given = os.environ.get("OVQ_WHEEL")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(ROOT),
         "--config-settings=build-dir=" + str(tmp_path_factory.mktemp("build"))],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (found,) = out.glob("ovq-*.whl")
    return found


@pytest.mark.slow  # builds the wheel (a C++ compile) unless CI passes the one it built in OVQ_WHEEL
def test_wheel_ships_passes_hw_configs_native_and_demo(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "ovq/__init__.py" in names
    assert "ovq/passes/__init__.py" in names, "passes/ must ship as ovq.passes"
    shipped = {f"ovq/hw_configs/{p.name}" for p in (ROOT / "hw_configs").glob("*.toml")}
    assert {f"ovq/hw_configs/{t}.toml" for t in ("any", "cpu", "gpu", "npu", "gna", "gna3")} <= shipped <= names, \
        "hw_configs/ must ship as ovq/hw_configs"
    assert any(n.startswith("ovq/_native") and n.endswith(".so") for n in names), "native extension missing"
    assert {"ovq/data/digits/digits.xml", "ovq/data/digits/digits.bin"} <= names
    assert "ovq/py.typed" in names
    assert not any(n.startswith(("tests/", "csrc/", "bench/", "ovq/testing/", "ovq_testing/")) for n in names)
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    version = zipfile.ZipFile(wheel).read(metadata).decode().split("\nVersion: ")[1].split()[0]
    assert version == _source_version()


def _source_version() -> str:
    """``__version__`` as written in the checkout's ovq/__init__.py (the one version source)."""
    import re

    text = (ROOT / "ovq" / "__init__.py").read_text()
    (version,) = re.findall(r'^__version__ = "([^"]+)"$', text, re.M)
    return version


def _python(code: str, **env) -> subprocess.CompletedProcess:
    # cwd outside the checkout: `python -c` puts the cwd first on sys.path, and the source
    # tree's ovq/ (no extension, no passes) would shadow the installed package.
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=tempfile.gettempdir(),
                          env={**os.environ, **env})


def test_import_works_without_the_native_extension():
    code = BLOCK_NATIVE + "import ovq; print(ovq.kernels_backend())\n"
    proc = _python(code, OVQ_KERNELS="auto")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() in ("numba", "numpy")


def test_import_ovq_does_not_import_passes_or_heavy_modules():
    proc = _python("import sys, ovq; print(sorted(m for m in sys.modules if m.startswith(('ovq.passes', 'numba', 'torch'))))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_forcing_a_missing_backend_is_a_clear_error():
    code = BLOCK_NATIVE + (
        "import ovq\n"
        "try:\n    ovq.kernels_backend()\nexcept ovq.BackendError as e:\n    print('BackendError:', e)\n"
    )
    proc = _python(code, OVQ_KERNELS="native")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("BackendError: OVQ_KERNELS=native: backend cannot be loaded")
