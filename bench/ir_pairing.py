"""Benchmark: the cost of the .xml/.bin pairing record (ovq.ir.pairing) on a large model.

Builds a chain of 12 MatMuls with 4096x4096 FP32 weights (768 MiB .bin), saves it with
and without the record and reads both back (ovq.read_model maps weights lazily, so the
read without a record touches almost nothing), and prints the medians. Page cache warm;
machines are shared and noisy: read the differences, not the absolute times.

Usage:
    python bench/ir_pairing.py [--repeat 5] [--layers 12]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--layers", type=int, default=12)
    args = parser.parse_args()

    import openvino as ov
    import openvino.opset13 as op

    import ovq
    from ovq.ir.writer import save_model

    x = op.parameter([1, 4096], np.float32, name="x")
    y = x
    rng = np.random.default_rng(0)
    for _ in range(args.layers):
        y = op.matmul(y, op.constant(rng.standard_normal((4096, 4096)).astype(np.float32)), False, False)
    graph = ovq.Graph.from_ov(ov.Model([y], [x]))
    with tempfile.TemporaryDirectory() as tmp:
        with_record, without = Path(tmp) / "a.xml", Path(tmp) / "b.xml"
        write_on = median_time(lambda: save_model(graph, with_record), args.repeat)
        write_off = median_time(lambda: save_model(graph, without, pairing_record=False), args.repeat)
        read_on = median_time(lambda: ovq.read_model(with_record), args.repeat)
        read_off = median_time(lambda: ovq.read_model(without), args.repeat)
        size = with_record.with_suffix(".bin").stat().st_size
    print(f".bin {size / 2**20:.0f} MiB, median of {args.repeat}")
    print(f"write: {write_on:.3f} s with the record, {write_off:.3f} s without")
    print(f"read:  {read_on:.3f} s with the check, {read_off:.3f} s without")


if __name__ == "__main__":
    main()
