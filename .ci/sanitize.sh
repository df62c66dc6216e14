#!/usr/bin/env bash
# Build ovq._native with AddressSanitizer + UBSan in build-asan/ and run tests/kernels
# against that build (OVQ_KERNELS=native). Usage: .ci/sanitize.sh /path/to/python
set -euo pipefail
PY="${1:?usage: .ci/sanitize.sh PYTHON}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="$ROOT/build-asan"
cd "$ROOT"

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DOVQ_SANITIZE=ON \
  -Dpybind11_DIR="$("$PY" -m pybind11 --cmakedir)" -DPython_EXECUTABLE="$(command -v "$PY" || echo "$PY")" >/dev/null
cmake --build "$BUILD" -j"$(nproc)" >/dev/null

SO="$(ls "$BUILD"/_native*.so | head -n1)"
# Overlay package: the wheel's layout (ovq/ with passes/ and hw_configs/ mapped in, as
# ovq/_install_check.py requires) whose _native is the sanitizer build, first on the path.
OVERLAY="$BUILD/overlay"
rm -rf "$OVERLAY" && mkdir -p "$OVERLAY"
cp -r "$ROOT/ovq" "$OVERLAY/ovq"
cp -r "$ROOT/passes" "$OVERLAY/ovq/passes"
cp -r "$ROOT/hw_configs" "$OVERLAY/ovq/hw_configs"
find "$OVERLAY/ovq" -name '_native*.so' -delete
cp "$SO" "$OVERLAY/ovq/"
# An editable install puts a redirecting import finder ahead of PYTHONPATH; drop it so
# the overlay (and its sanitizer-built _native) is what `import ovq` finds.
cat > "$OVERLAY/sitecustomize.py" <<'PYEOF'
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__]
PYEOF

LIBASAN="$(gcc -print-file-name=libasan.so)"
LIBUBSAN="$(gcc -print-file-name=libubsan.so)"
export LD_PRELOAD="$LIBASAN:$LIBUBSAN"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export OVQ_KERNELS=native
export PYTHONPATH="$OVERLAY${PYTHONPATH:+:$PYTHONPATH}"
cd "$OVERLAY"  # the source tree's ovq/ (no extension) must not shadow the overlay

"$PY" - <<'PYEOF'
import ovq, ovq._native as n
print("ovq from", ovq.__file__)
assert "build-asan" in ovq.__file__, "overlay package not used"
print("native from", n.__file__, n.build_info())
assert "build-asan" in n.__file__, "not running the sanitizer build"
assert n.build_info()["sanitize"], "extension was not built with ASan"
PYEOF

# -p no:cacheprovider: do not write .pytest_cache from the sanitized run. Subprocess tests
# are skipped (they would re-import without the overlay) and so is the OpenVINO test:
# OpenVINO itself aborts under ASan; the native FQ is checked against the reference.
"$PY" -m pytest "$ROOT/tests/kernels" -q -p no:cacheprovider -x \
  --rootdir="$ROOT" -c "$ROOT/pyproject.toml" -k "not subprocess and not missing_backend and not does_not_load" \
  --ignore="$ROOT/tests/kernels/test_fake_quantize_openvino.py"
echo "sanitize: OK"
