"""ovq.quantize vs nncf.quantize: accuracy, wall time, peak memory, INT8 coverage, latency.

Usage: python bench/quantize.py [--repeats N] [MODEL ...]
(default models: digits resnet_like efficientnet_lite0 minilm)

For every model and repeat, each tool quantizes in a **fresh process** (so import
caches and peak RSS are its own), in alternating order, on the same model, the same
calibration samples and the same subset size, with its defaults (NNCF:
``fast_bias_correction=True``, weights compressed; ``model_type=TRANSFORMER`` for
MiniLM on both). The ovq process also times the floor: one plain FP32 pass over the
same samples (same compile settings, ``AsyncInferQueue`` with the optimal number of
requests plus one, as ovq), after the quantization is
measured; the table gives the ratio to the inference alone and to compile + inference. Peak RSS growth is the peak during the quantize call (VmHWM reset through
``/proc/self/clear_refs`` just before) minus the RSS with the model and data loaded.

The parent then evaluates both saved models (``compress_to_fp16=False``) on held-out
data with the f32 hint, runs the INT8 audit, and times single-request latency
(FP32, ovq and NNCF models interleaved, one request each per round, rotating; compiled
in both orders and averaged).
Times are reported as ratios (ovq / NNCF, ovq / FP32 pass): the machine is shared.

Metrics: digits accuracy on 450 test images (calibration: 300 train images);
EfficientNet-Lite0 top-1 agreement with FP32 on crops 300..599 (calibration: crops
0..299); MiniLM embedding cosine on the 71 sentences (calibration: every second
sentence, 36); resnet_like top-1 agreement and logit SQNR on 50 N(0,1) inputs
(calibration: 300 N(0,1) inputs, seed 1).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from memory import peak_mb, reset_peak, rss_mb  # bench/memory.py: this script's folder is on sys.path

# The test assets live with the tests (tests/ovq_testing), not in the installed ovq.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

DEFAULT = ["digits", "resnet_like", "efficientnet_lite0", "minilm"]


def calibration(name: str) -> list:
    from ovq_testing import assets

    if name == "digits":
        x, _ = assets.digits_data("calib")
        return [x[i : i + 1] for i in range(len(x))]
    if name == "resnet_like":
        return assets.random_inputs(n=300, seed=1)
    if name == "efficientnet_lite0":
        crops = assets.efficientnet_crops(600)
        return [np.array(crops[i : i + 1]) for i in range(300)]
    if name == "minilm":
        inp = assets.minilm_inputs()
        return [{k: v[i : i + 1] for k, v in inp.items()} for i in range(0, 71, 2)]
    raise SystemExit(f"unknown model {name}")


def evaluation(name: str):
    """(inputs list, metric(fp_outputs, q_outputs) -> dict)."""
    from ovq_testing import assets

    if name == "digits":
        x, labels = assets.digits_data("test")

        def metric(fp, q):
            return {"acc_fp32": float((fp[0].argmax(1) == labels).mean()),
                    "acc_int8": float((q[0].argmax(1) == labels).mean())}

        return [[x]], metric
    if name == "resnet_like":
        xs = assets.random_inputs(n=50, seed=2)

        def metric(fp, q):
            a, b = fp[0], q[0]
            sqnr = 10 * np.log10((a**2).sum() / ((a - b) ** 2).sum())
            return {"agreement": float((a.argmax(1) == b.argmax(1)).mean()), "sqnr_db": float(sqnr)}

        return [[x] for x in xs], metric
    if name == "efficientnet_lite0":
        crops = assets.efficientnet_crops(600)
        batches = [[np.array(crops[i : i + 50])] for i in range(300, 600, 50)]

        def metric(fp, q):
            a, b = fp[0], q[0]
            top5 = np.argsort(-b, 1)[:, :5]
            return {"agreement": float((a.argmax(1) == b.argmax(1)).mean()),
                    "fp_top1_in_int8_top5": float(np.mean([a[i].argmax() in top5[i] for i in range(len(a))]))}

        return batches, metric
    if name == "minilm":
        inp = assets.minilm_inputs()

        def metric(fp, q):
            e1 = assets.mean_pool_normalize(fp[0], inp["attention_mask"])
            e2 = assets.mean_pool_normalize(q[0], inp["attention_mask"])
            cos = (e1 * e2).sum(1)
            s1, s2 = e1 @ e1.T, e2 @ e2.T
            np.fill_diagonal(s1, -2)
            np.fill_diagonal(s2, -2)
            return {"cos_mean": float(cos.mean()), "cos_min": float(cos.min()),
                    "nn_agreement": float((s1.argmax(1) == s2.argmax(1)).mean())}

        return [inp], metric
    raise SystemExit(f"unknown model {name}")


def _fp32_pass(model, samples) -> tuple[float, float]:
    """One plain FP32 pass over ``samples`` with the compile settings ovq uses:
    ``(compile seconds, inference seconds)``."""
    import openvino as ov

    from ovq.ir.bridge import core

    t = time.perf_counter()
    compiled = core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "THROUGHPUT"})
    compile_seconds = time.perf_counter() - t
    # one request more than the optimal number, as ovq's statistics pass uses: it is the
    # faster setting for a plain pass too, so the floor is not handicapped by the request count
    queue = ov.AsyncInferQueue(compiled, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")) + 1)
    t = time.perf_counter()
    for s in samples:
        queue.start_async(s if isinstance(s, dict) else [s])
    queue.wait_all()
    return compile_seconds, time.perf_counter() - t


def _static_copy(model, samples):
    """``model`` reshaped to the first sample's input shapes as ovq's statistics pass does
    (None if its inputs are static or it cannot be made static)."""
    from ovq.quantization.statistics import _reshaped

    if all(port.get_partial_shape().is_static for port in model.inputs):
        return None
    first = samples[0]
    arrays = [first[port.get_any_name()] for port in model.inputs] if isinstance(first, dict) else [first]
    return _reshaped(model, tuple(np.shape(a) for a in arrays))


def child(tool: str, name: str, out: str) -> None:
    """Quantize ``name`` with ``tool`` in this process; write the model and a JSON line."""
    import openvino as ov

    from ovq_testing.assets import asset_path

    model = ov.Core().read_model(str(asset_path(name)))
    samples = calibration(name)
    transformer = name == "minilm"
    result = {"tool": tool, "model": name}
    if tool == "ovq":
        import ovq

        reset_peak()
        rss0 = rss_mb()
        t = time.perf_counter()
        q, report = ovq.quantize(model, samples, model_type="transformer" if transformer else None,
                                 subset_size=300, progress=False, return_report=True)
        result["seconds"] = time.perf_counter() - t
        result["rss_growth_mb"] = peak_mb() - rss0
        result["phases"] = report.phases
        floor = min((_fp32_pass(model, samples) for _ in range(2)), key=lambda ct: ct[1])
        result["fp32_compile"], result["fp32_pass"] = floor
        # ovq specializes its statistics model to the samples' static shapes; a plain pass
        # gains from that too, so the bench also reports the floor of a static-shape copy
        fixed = _static_copy(model, samples)
        result["fp32_static_pass"] = (min(_fp32_pass(fixed, samples)[1] for _ in range(2)) if fixed is not None
                                      else result["fp32_pass"])
    else:
        import logging

        import nncf

        logging.getLogger("nncf").setLevel(logging.ERROR)
        reset_peak()
        rss0 = rss_mb()
        t = time.perf_counter()
        kwargs = {"model_type": nncf.ModelType.TRANSFORMER} if transformer else {}
        q = nncf.quantize(model, nncf.Dataset(samples), subset_size=300, **kwargs)
        result["seconds"] = time.perf_counter() - t
        result["rss_growth_mb"] = peak_mb() - rss0
    ov.save_model(q, out, compress_to_fp16=False)
    print(json.dumps(result))


def _latencies(compiled: dict, inputs, runs: int = 200) -> dict[str, float]:
    """Median single-request latency of each compiled model, measured **interleaved**
    (one request of each model per round) so that load from other processes falls on
    all of them alike."""
    reqs = {k: c.create_infer_request() for k, c in compiled.items()}
    for req in reqs.values():
        for _ in range(10):
            req.infer(inputs)
    times: dict[str, list[float]] = {k: [] for k in reqs}
    keys = list(reqs)
    for r in range(runs):
        for k in keys[r % len(keys):] + keys[: r % len(keys)]:  # rotated: no model always follows the same one
            req = reqs[k]
            t = time.perf_counter()
            req.infer(inputs)
            times[k].append(time.perf_counter() - t)
    return {k: float(np.median(v)) for k, v in times.items()}


def _run(compiled, batches) -> list[np.ndarray]:
    """Every output of ``compiled`` over ``batches``, concatenated along the batch axis."""
    req = compiled.create_infer_request()
    per_batch = [[np.array(req.infer(b)[o]) for o in compiled.outputs] for b in batches]
    return [np.concatenate([pb[k] for pb in per_batch]) for k in range(len(compiled.outputs))]


def evaluate(name: str, paths: dict[str, str]) -> dict:
    import openvino as ov

    from ovq.quantization import runtime_audit
    from ovq.runtime import compile_model
    from ovq_testing.assets import asset_path

    core = ov.Core()
    fp = compile_model(core.read_model(str(asset_path(name))))
    batches, metric = evaluation(name)
    fp_out = _run(fp, batches)
    lat_in = calibration(name)[0]
    lat_in = lat_in if isinstance(lat_in, dict) else [lat_in]
    row: dict = {}
    models = {tool: core.read_model(path) for tool, path in paths.items()}
    for tool, model in models.items():
        row[tool] = metric(fp_out, _run(compile_model(model), batches))
        row[tool]["int8"] = runtime_audit(model).summary()
        row[tool]["fq"] = sum(op.get_type_name() == "FakeQuantize" for op in model.get_ops())
        row[tool]["bin_mb"] = Path(paths[tool]).with_suffix(".bin").stat().st_size / 2**20
    # The model compiled first measured ~3 % slower here whichever tool made it (same
    # runtime graphs): compile in both orders and average.
    rounds = []
    for order in (list(models), list(reversed(models))):
        compiled = {"fp32": fp, **{tool: compile_model(models[tool]) for tool in order}}
        rounds.append(_latencies(compiled, lat_in))
        del compiled
    row["fp32_latency"] = float(np.mean([r["fp32"] for r in rounds]))
    for tool in paths:
        row[tool]["latency"] = float(np.mean([r[tool] for r in rounds]))
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*", default=DEFAULT)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", nargs=3, metavar=("TOOL", "MODEL", "OUT"))
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    env = dict(os.environ, OVQ_NO_PROGRESS="1", PYTHONWARNINGS="ignore")
    table = []
    with tempfile.TemporaryDirectory(prefix="ovq-bench-") as tmp:
        for name in args.models:
            runs: dict[str, list[dict]] = {"ovq": [], "nncf": []}
            paths = {}
            for r in range(args.repeats):
                order = ("ovq", "nncf") if r % 2 == 0 else ("nncf", "ovq")
                for tool in order:
                    out = str(Path(tmp) / f"{name}_{tool}.xml")
                    proc = subprocess.run([sys.executable, __file__, "--child", tool, name, out], env=env,
                                          capture_output=True, text=True, cwd=tempfile.gettempdir())
                    if proc.returncode:
                        raise SystemExit(f"{tool} on {name} failed:\n{proc.stderr[-3000:]}")
                    runs[tool].append(json.loads(proc.stdout.strip().splitlines()[-1]))
                    paths[tool] = out
            ev = evaluate(name, paths)
            med = {t: float(np.median([x["seconds"] for x in v])) for t, v in runs.items()}
            floor = float(np.median([x["fp32_pass"] for x in runs["ovq"]]))
            floor_compiled = float(np.median([x["fp32_pass"] + x["fp32_compile"] for x in runs["ovq"]]))
            static_floor = float(np.median([x["fp32_static_pass"] for x in runs["ovq"]]))
            rss = {t: float(np.median([x["rss_growth_mb"] for x in v])) for t, v in runs.items()}
            table.append((name, med, floor, floor_compiled, static_floor, rss, ev, runs["ovq"][-1]["phases"]))
            print(f"done {name}", file=sys.stderr)
    print(f"{'model':<20} {'ovq/nncf time':>13} {'ovq/fp32 pass':>13} {'(static pass)':>13} {'ovq/(compile+pass)':>18} "
          f"{'ΔRSS ovq/nncf MB':>17} {'lat ovq/nncf':>12}  accuracy (ovq | nncf)")
    for name, med, floor, floor_compiled, static_floor, rss, ev, phases in table:
        acc = {t: {k: v for k, v in ev[t].items() if k not in ("latency", "int8", "fq", "bin_mb")} for t in ("ovq", "nncf")}
        print(f"{name:<20} {med['ovq'] / med['nncf']:>13.2f} {med['ovq'] / floor:>13.2f} {med['ovq'] / static_floor:>13.2f} "
              f"{med['ovq'] / floor_compiled:>18.2f} "
              f"{rss['ovq']:>8.0f}/{rss['nncf']:<8.0f} {ev['ovq']['latency'] / ev['nncf']['latency']:>12.2f}  "
              f"{json.dumps(acc['ovq'])} | {json.dumps(acc['nncf'])}")
        print(f"{'':<20} ovq {med['ovq']:.2f} s, nncf {med['nncf']:.2f} s, FP32 pass {floor:.2f} s (static shapes {static_floor:.2f} s); "
              f"INT8 ovq {ev['ovq']['int8']}, nncf {ev['nncf']['int8']}; FQ {ev['ovq']['fq']} vs {ev['nncf']['fq']}; "
              f".bin {ev['ovq']['bin_mb']:.2f} vs {ev['nncf']['bin_mb']:.2f} MiB")
        print(f"{'':<20} ovq phases: " + ", ".join(f"{k} {v:.2f}" for k, v in phases.items()))


if __name__ == "__main__":
    main()
