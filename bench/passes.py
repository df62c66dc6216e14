"""Benchmark: ovq's cleanup + fusion pipeline vs OpenVINO's MOC pipeline on the same IR.

ovq:      ovq.read_model(xml) → run_pipeline(graph, PIPELINE) → graph.to_ov()
OpenVINO: Core().read_model(xml) → apply_moc_transformations(model, cf=True)

Both sides start from the IR path and end with an ``openvino.Model``, so ovq pays for
building and leaving its networkx mirror (and for the shape inference its passes do
through OpenVINO). OpenVINO's transform-only time is reported too. The two tools
alternate within one process; the report gives medians over ``--repeat`` runs, the
ovq/OpenVINO ratio and the op counts after each pipeline. Machines
are shared and noisy: read the ratio, not the absolute times.

Usage:
    python bench/passes.py [--models minilm,efficientnet_lite0] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

# The test assets live with the tests (tests/ovq_testing), not in the installed ovq.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

PIPELINE = "fold-constants,fuse-pad,fuse-batchnorm,merge-linear-chains,fold-linear,eliminate-dead-code"


def op_counts(model) -> Counter:
    """Op type histogram of an ``openvino.Model``."""
    return Counter(op.get_type_name() for op in model.get_ordered_ops())


def run_ovq(xml: str):
    import ovq

    t0 = time.perf_counter()
    graph = ovq.read_model(xml)
    ovq.run_pipeline(graph, PIPELINE)
    model = graph.to_ov()
    return time.perf_counter() - t0, model


def run_openvino(core, xml: str):
    from openvino._offline_transformations import apply_moc_transformations

    t0 = time.perf_counter()
    model = core.read_model(xml)
    t1 = time.perf_counter()
    apply_moc_transformations(model, cf=True)
    t2 = time.perf_counter()
    return t2 - t0, t2 - t1, model


def bench(name: str, repeat: int) -> dict:
    import openvino as ov

    from ovq_testing import assets

    xml = str(assets.asset_path(name))
    core = ov.Core()
    original = op_counts(core.read_model(xml))
    ovq_times, ov_times, ov_transform = [], [], []
    ovq_model = ov_model = None
    run_ovq(xml)  # warm-up: imports, pass registry, page cache
    run_openvino(core, xml)
    for _ in range(repeat):
        seconds, ovq_model = run_ovq(xml)
        ovq_times.append(seconds)
        total, transform, ov_model = run_openvino(core, xml)
        ov_times.append(total)
        ov_transform.append(transform)
    return {
        "name": name,
        "ovq": statistics.median(ovq_times),
        "openvino": statistics.median(ov_times),
        "openvino_transform": statistics.median(ov_transform),
        "ops_before": original,
        "ops_ovq": op_counts(ovq_model),
        "ops_openvino": op_counts(ov_model),
    }


def describe(counts: Counter, reference: Counter) -> str:
    """Total ops plus the types whose count differs from ``reference``."""
    diff = {k: counts.get(k, 0) for k in sorted(set(counts) | set(reference)) if counts.get(k, 0) != reference.get(k, 0)}
    return f"{sum(counts.values())} ops; " + ", ".join(f"{k} {reference.get(k, 0)}→{v}" for k, v in diff.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="minilm,efficientnet_lite0")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"pipeline: {PIPELINE}\nmedian of {args.repeat} runs\n")
    print(f"{'model':<20}{'ovq s':>9}{'OV read+MOC s':>15}{'OV MOC s':>10}{'ratio':>8}{'ratio vs MOC':>14}")
    results = [bench(name, args.repeat) for name in args.models.split(",")]
    for r in results:
        print(f"{r['name']:<20}{r['ovq']:>9.3f}{r['openvino']:>15.3f}{r['openvino_transform']:>10.3f}"
              f"{r['ovq'] / r['openvino']:>7.2f}×{r['ovq'] / r['openvino_transform']:>13.2f}×")
    print()
    for r in results:
        print(f"{r['name']}: before {sum(r['ops_before'].values())} ops")
        print(f"  ovq:      {describe(r['ops_ovq'], r['ops_before'])}")
        print(f"  OpenVINO: {describe(r['ops_openvino'], r['ops_before'])}")


if __name__ == "__main__":
    main()
