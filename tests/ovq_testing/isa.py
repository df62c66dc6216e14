"""Run saved models under a capped CPU ISA (``ONEDNN_MAX_CPU_ISA``) in a child process.

oneDNN fixes the ISA at its first query, so each ISA needs its own process. The child
compiles each model at f32 inference precision and returns its first output for every
batch, concatenated along dim 0.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

_CHILD = """
import pickle, sys
import numpy as np, openvino as ov
models, batches, out = pickle.load(open(sys.argv[1], "rb")), pickle.load(open(sys.argv[2], "rb")), sys.argv[3]
core = ov.Core()
results = {}
for key, path in models.items():
    compiled = core.compile_model(core.read_model(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    req = compiled.create_infer_request()
    results[key] = np.concatenate([np.array(req.infer(b)[compiled.outputs[0]]) for b in batches])
pickle.dump(results, open(out, "wb"))
"""


def cpu_flags() -> set[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def native_isa_has_int32_accumulation() -> bool:
    """The CPU has VNNI or AMX: its own INT8 kernels accumulate u8 x s8 in int32."""
    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})


def isas_to_check() -> list[str]:
    """``AVX2`` (saturating int16 pairs, on any x86 CPU) and, where the CPU has VNNI or
    AMX, ``DEFAULT`` (its own kernels)."""
    return ["AVX2", "DEFAULT"] if native_isa_has_int32_accumulation() else ["AVX2"]


def run_under_isa(models: Mapping[str, str | Path], batches: Sequence[Any], isa: str) -> dict[str, np.ndarray]:
    """First output of each saved model over ``batches`` (each a list or dict of arrays),
    in a child process with ``ONEDNN_MAX_CPU_ISA=isa``."""
    with tempfile.TemporaryDirectory() as tmp:
        m, b, out = (os.path.join(tmp, n) for n in ("models.pkl", "batches.pkl", "out.pkl"))
        with open(m, "wb") as f:
            pickle.dump({k: str(v) for k, v in models.items()}, f)
        with open(b, "wb") as f:
            pickle.dump(list(batches), f)
        env = {**os.environ, "ONEDNN_MAX_CPU_ISA": isa}
        subprocess.run([sys.executable, "-c", _CHILD, m, b, out], env=env, check=True, capture_output=True)
        with open(out, "rb") as f:
            return pickle.load(f)
