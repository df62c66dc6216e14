"""What ``--report`` adds to ``ovq quantize`` time (no ``--fp``/``--data`` re-run: the
report's own compiles, latency runs and histogram samples only).

Usage::

    python bench/report.py [--runs 2] [--samples 300] [MODEL ...]

(models: efficientnet_lite0; built by tests/ovq_testing). For each model the
bench writes the first ``--samples`` calibration crops to an ``.npy`` file, then runs
``ovq quantize MODEL -o OUT --data FILE -q`` and the same with ``--report OUT.html``,
alternating, ``--runs`` times each, and prints the best wall time of each, their ratio,
and the ``report`` time the command printed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _data(name: str, n: int) -> np.ndarray:
    from ovq_testing import assets

    if name == "efficientnet_lite0":
        return np.asarray(assets.efficientnet_crops(max(n, 600))[:n])
    raise SystemExit(f"bench/report.py: no calibration data for {name}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="*", default=["efficientnet_lite0"])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    from ovq_testing import assets

    ovq_cli = Path(sys.executable).parent / "ovq"
    for name in args.models:
        model = assets.asset_path(name)
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "calib.npy"
            np.save(data, _data(name, args.samples))
            base = [str(ovq_cli), "quantize", str(model), "-o", f"{tmp}/q.xml", "--data", str(data), "-q"]
            best = {"plain": float("inf"), "report": float("inf")}
            report_s = []
            for _ in range(args.runs):
                for kind in ("plain", "report"):
                    cmd = base + (["--report", f"{tmp}/q.html"] if kind == "report" else [])
                    t0 = time.perf_counter()
                    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                    best[kind] = min(best[kind], time.perf_counter() - t0)
                    for line in out.splitlines():
                        if line.startswith("report time:"):
                            report_s.append(float(line.split()[2]))
            print(f"{name}: ovq quantize {best['plain']:.1f} s, with --report {best['report']:.1f} s "
                  f"(+{100 * (best['report'] / best['plain'] - 1):.1f} %); report step "
                  f"{', '.join(f'{s:.2f}' for s in report_s)} s")


if __name__ == "__main__":
    main()
