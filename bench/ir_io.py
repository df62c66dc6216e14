"""Benchmark: read + write of an IR through ovq vs through OpenVINO itself.

ovq:      ovq.read_model(xml) → ovq.save_model(graph, out.xml)
OpenVINO: Core().read_model(xml) → openvino.save_model(model, out.xml, compress_to_fp16=False)

Each measurement runs in a fresh process (so peak RSS is clean), the two tools
alternate, and the report gives medians, the ovq/OpenVINO time ratio and the peak RSS
growth of each over its post-import baseline (VmHWM). Machines are shared and noisy:
read the ratio, not the absolute times.

Usage:
    python bench/ir_io.py [--model PATH.xml] [--repeat 7]
(default model: the MiniLM IR from ovq_testing.assets, ≈ 91 MB of weights).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The test assets live with the tests (tests/ovq_testing), not in the installed ovq.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def worker(tool: str, model: str, out_dir: str, inner: int) -> None:
    """``inner`` timed read+writes in this process, each to a fresh path; prints JSON.

    The first iteration is what a one-shot CLI run pays; later ones are the steady
    state of a long-lived process (e.g. a batch job). Outputs are deleted between
    iterations, outside the timed region, so neither tool pays for freeing the
    previous output's blocks.
    """
    if tool == "ovq":
        import ovq

        def read(path):
            return ovq.read_model(path)

        def write(m, path):
            ovq.save_model(m, path)
    else:
        import openvino as ov

        core = ov.Core()

        def read(path):
            return core.read_model(path)

        def write(m, path):
            ov.save_model(m, path, compress_to_fp16=False)

    baseline = _status_kib("VmRSS")
    totals, reads = [], []
    for k in range(inner):
        target = Path(out_dir) / f"{tool}_{k}.xml"
        t0 = time.perf_counter()
        m = read(model)
        reads.append(time.perf_counter() - t0)
        write(m, target)
        totals.append(time.perf_counter() - t0)
        del m
        target.unlink()
        target.with_suffix(".bin").unlink()
    print(json.dumps({"tool": tool, "first_s": totals[0], "first_read_s": reads[0],
                      "steady_s": min(totals[1:]) if inner > 1 else totals[0],
                      "rss_growth_mib": (_status_kib("VmHWM") - baseline) / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--worker", choices=["ovq", "openvino"])
    parser.add_argument("--out", default=None)
    parser.add_argument("--inner", type=int, default=4, help="read+writes per process")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.model, args.out, args.inner)
        return
    model = args.model
    if model is None:
        from ovq_testing.assets import asset_path

        model = str(asset_path("minilm"))
    bin_mib = Path(model).with_suffix(".bin").stat().st_size / 2**20
    runs: dict[str, list[dict]] = {"ovq": [], "openvino": []}
    with tempfile.TemporaryDirectory(prefix="ovq-bench-") as out:
        for i in range(args.repeat + 1):  # round 0 warms the page cache and is dropped
            for tool in (("ovq", "openvino") if i % 2 else ("openvino", "ovq")):
                proc = subprocess.run(
                    [sys.executable, __file__, "--worker", tool, "--model", model, "--out", out,
                     "--inner", str(args.inner)],
                    capture_output=True, text=True, check=True)
                if i:
                    runs[tool].append(json.loads(proc.stdout.strip().splitlines()[-1]))

    def med(tool: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[tool])

    print(f"model: {model} ({bin_mib:.1f} MiB .bin); {args.repeat} fresh processes per tool, "
          f"{args.inner} read+writes each")
    print(f"{'tool':<10} {'first read+write s':>19} {'(read s)':>9} {'steady read+write s':>20} "
          f"{'peak RSS growth MiB':>20}")
    for tool in ("ovq", "openvino"):
        print(f"{tool:<10} {med(tool, 'first_s'):>19.3f} {med(tool, 'first_read_s'):>9.3f} "
              f"{med(tool, 'steady_s'):>20.3f} {med(tool, 'rss_growth_mib'):>20.1f}")
    first = med("ovq", "first_s") / med("openvino", "first_s")
    steady = med("ovq", "steady_s") / med("openvino", "steady_s")
    print(f"time ratio ovq/OpenVINO: first call {first:.2f}x, steady state {steady:.2f}x")
    growth = med("ovq", "rss_growth_mib")
    print(f"ovq peak RSS growth: {growth:.1f} MiB = {growth / bin_mib:.1%} of the .bin "
          f"(OpenVINO: {med('openvino', 'rss_growth_mib'):.1f} MiB)")


if __name__ == "__main__":
    main()
