"""How ovq is installed and imported: whatever the install (wheel or ``pip install -e .``),
the package has its passes, hardware descriptors, native kernels and demo data, and one
version; the bare source folder refuses to import, saying what to run."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import ovq

ROOT = Path(__file__).resolve().parents[2]
FIX = "-m pip install -e '.[test]'"


def _editable() -> bool:
    """Whether the ovq under test is an editable install (PEP 610 ``direct_url.json``)."""
    text = importlib.metadata.distribution("ovq").read_text("direct_url.json")
    return bool(text and json.loads(text).get("dir_info", {}).get("editable"))


def _run(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def test_installed_ovq_has_passes_descriptors_native_and_data():
    from ovq.data import demo_model_path
    from ovq.hw import list_targets
    from ovq.pipeline import registered_passes

    assert importlib.util.find_spec("ovq.passes") is not None
    assert "fuse-batchnorm" in registered_passes()  # built-ins come through the entry points
    assert list_targets() == sorted(p.stem for p in (ROOT / "hw_configs").glob("*.toml"))
    assert importlib.util.find_spec("ovq._native") is not None, "native kernels not built"
    assert demo_model_path().is_file()
    assert importlib.util.find_spec("ovq.testing") is None, "test helpers live in tests/ovq_testing"


def test_one_version():
    assert importlib.metadata.version("ovq") == ovq.__version__
    text = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in text and "\nversion =" not in text


def test_source_folder_refuses_to_import_and_names_the_fix():
    # -S: no site-packages, so no installed or editable ovq; the checkout's ovq/ is what
    # `import ovq` finds (cwd first on sys.path). The refusal comes before any dependency
    # import (numpy is not importable under -S either).
    proc = _run(sys.executable, "-S", "-c", "import ovq")
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()
    assert any(line.startswith("ImportError: ovq: ") and "source folder" in line for line in last), proc.stderr
    assert f"{sys.executable} {FIX}" in proc.stderr
    assert "ModuleNotFoundError" not in proc.stderr


def test_python_m_pytest_in_the_checkout_works_or_stops_at_once():
    # `python -m pytest` puts the checkout first on sys.path. With an editable install the
    # install's import hook still wins; with a wheel install, the conftest stops with the
    # install check's message instead of one collection error per test module.
    proc = _run(sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                "tests/packaging/test_install.py")
    if _editable():
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return
    assert proc.returncode == 4, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert "source folder" in out and FIX in out
    assert "ERROR collecting" not in out
    assert len(out.splitlines()) < 10


@pytest.mark.slow  # a fresh venv and an isolated C++ build (about a minute on 2 cores)
def test_editable_install_maps_passes_descriptors_and_native(tmp_path):
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", str(venv), cwd=tmp_path).check_returncode()
    py = venv / "bin" / "python"
    # Dependencies come from this environment (a .pth after the new venv's own
    # site-packages) so nothing but the build requirements is downloaded; the editable
    # install's import hook is a meta-path finder, so it still wins for `ovq`.
    site = Path(_run(str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").stdout.strip())
    (site / "zz_test_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    proc = _run(str(py), "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(ROOT),
                "--config-settings=build-dir=" + str(tmp_path / "build"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    check = (
        "import importlib.metadata as md, json, ovq, ovq.passes\n"
        "from ovq.hw import list_targets\n"
        "from ovq.pipeline import registered_passes\n"
        "print(json.dumps([ovq.__file__, ovq.passes.__file__, list_targets(), ovq.kernels_backend(),\n"
        "                  'fuse-batchnorm' in registered_passes(), md.version('ovq')]))\n"
    )
    targets = sorted(p.stem for p in (ROOT / "hw_configs").glob("*.toml"))
    for cwd in (ROOT, tmp_path):  # from the checkout (cwd first on sys.path) and from outside
        proc = _run(str(py), "-c", check, cwd=cwd, OVQ_KERNELS="auto")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == [str(ROOT / "ovq" / "__init__.py"), str(ROOT / "passes" / "__init__.py"),
                                           targets, "native", True, ovq.__version__]
