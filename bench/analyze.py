"""``ovq.analyze``: ranking quality against the true per-layer impact, and time.

Usage::

    python bench/analyze.py ranking [--calib N] [--layers K] [MODEL ...]
    python bench/analyze.py timing [--calib N] [MODEL ...]

(models: resnet_like, efficientnet_lite0, minilm; the INT8 models are quantized here with
``ovq.quantize`` and the bench's calibration data, as bench/quantize.py does).

**ranking**: for every analysed layer L (or the first K in model order), the true
impact of L on the model output, two ways, on held-out data:

* *only L*: the FP model with L alone quantized (L replaced by the shadow copy analyze
  builds: L's activation FakeQuantize ops, INT8 weights and bias from the INT8 model);
  impact = NMSE of the model output vs FP;
* *all but L*: the INT8 model with L reverted to FP (its FakeQuantize inputs bypassed,
  its weights taken from the FP model; layers whose FakeQuantize sits behind a
  transparent op such as MaxPool are skipped); impact = output NMSE of the INT8 model
  minus that of the reverted one (what reverting L buys).

Then the Spearman rank correlation of analyze's per-layer NMSE (and of a few other
signals in the table) with each impact, and the overlap of the top 5.

**timing**: wall time of ``ovq.analyze`` against one plain FP32 pass over the same
samples (compile + inference, THROUGHPUT hint, optimal requests + 1, as analyze).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

# The test assets live with the tests (tests/ovq_testing), not in the installed ovq.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

sys.path.insert(0, str(Path(__file__).parent))


def _models(name: str):
    import openvino as ov

    import ovq
    from ovq_testing.assets import asset_path
    from quantize import calibration

    fp = ov.Core().read_model(str(asset_path(name)))
    q = ovq.quantize(fp, calibration(name), model_type="transformer" if name == "minilm" else None,
                     subset_size=300, progress=False)
    return fp, q


def _eval_inputs(name: str) -> list:
    from ovq_testing import assets

    if name == "resnet_like":
        return [[x] for x in assets.random_inputs(n=50, seed=2)]
    if name == "efficientnet_lite0":
        crops = assets.efficientnet_crops(600)
        return [[np.array(crops[i:i + 50])] for i in range(300, 400, 50)]
    if name == "minilm":
        inp = assets.minilm_inputs()
        return [{k: v[i:i + 1] for k, v in inp.items()} for i in range(1, 71, 2)]
    raise SystemExit(f"unknown model {name}")


def _outputs(model, inputs) -> list[np.ndarray]:
    """The model's first real output that is not a Softmax (resnet_like: its logits, not its
    probabilities, which saturate) on every input; MiniLM's padding positions zeroed
    (as analyze does: nothing downstream reads them)."""
    from ovq.ir.bridge import core

    compiled = core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    pick = next((k for k, r in enumerate(model.get_results())
                 if r.input_value(0).get_node().get_type_name() != "Softmax"), 0)
    req = compiled.create_infer_request()
    from ovq.quantization.analyze import _masked

    return [_masked(np.array(req.infer(x)[compiled.output(pick)], np.float64),
                    x.get("attention_mask") if isinstance(x, dict) else None) for x in inputs]


def _nmse(ref: list[np.ndarray], got: list[np.ndarray]) -> float:
    return float(sum(((a - b) ** 2).sum() for a, b in zip(ref, got)) / sum((a ** 2).sum() for a in ref))


def only_layer(fp, q, name: str):
    """The FP model with layer ``name`` alone quantized (its shadow from the INT8 model)."""
    import openvino as ov

    from ovq.quantization.analyze import LINEAR_TYPES, _bias_add, _Builder

    fp, q = fp.clone(), q.clone()
    b = _Builder(fp, q)
    node = next(op for op in b.q_ops if b.name(op) == name)
    fp_node = b.fp_ops[name]
    for k in range(node.get_input_size()):
        b.rewire_input(node, k)
    y_q, y_fp = node.output(0), fp_node.output(0)
    if node.get_type_name() in LINEAR_TYPES:
        add_q, add_fp = _bias_add(node, b), _bias_add(fp_node, None)
        if add_q is not None and add_fp is not None:
            y_q, y_fp = add_q.output(0), add_fp.output(0)
    for target in list(y_fp.get_target_inputs()):
        target.get_node().set_argument(target.get_index(), y_q)
    return ov.Model(fp.get_results(), fp.get_parameters(), "only_" + name)


def all_but_layer(fp, q, name: str):
    """The INT8 model with layer ``name`` reverted to FP, or None when its FakeQuantize
    is not its direct producer."""
    import openvino as ov

    q = q.clone()
    fp_node = next(op for op in fp.get_ops() if op.get_friendly_name() == name)
    node = next(op for op in q.get_ops() if op.get_friendly_name() == name)
    from ovq.quantization.analyze import _Builder

    b = _Builder(fp, q)
    act, wts = b.quantized_inputs(node)
    for k in act:
        src = node.input_value(k).get_node()
        if src.get_type_name() != "FakeQuantize":
            return None
        node.set_argument(k, src.input_value(0))
    for k in wts:
        node.set_argument(k, fp_node.input_value(k))
    return ov.Model(q.get_results(), q.get_parameters(), "revert_" + name)


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def truth(name: str, fp, q, names: list[str]) -> list[dict]:
    """The true impact of every layer in ``names`` (see the module docstring)."""
    inputs = _eval_inputs(name)
    ref = _outputs(fp, inputs)
    full = _nmse(ref, _outputs(q, inputs))
    rows = []
    for layer in names:
        only = _nmse(ref, _outputs(only_layer(fp, q, layer), inputs))
        reverted = all_but_layer(fp, q, layer)
        gain = full - _nmse(ref, _outputs(reverted, inputs)) if reverted is not None else None
        rows.append({"layer": layer, "only_nmse": only, "revert_gain": gain, "full_int8_output_nmse": full})
    return rows


def ranking(name: str, calib: int, limit: int | None, impacts: list[int], truth_file: Path | None) -> dict:
    import ovq
    from quantize import calibration

    fp, q = _models(name)
    data = calibration(name)
    tables = {k: ovq.analyze(fp, q, data, subset_size=calib, impact_samples=k, progress=False) for k in impacts}
    base = tables[impacts[0]]
    order = [op.get_friendly_name() for op in q.get_ordered_ops()]
    names = sorted(base.names(), key=order.index)[:limit]
    t0 = time.perf_counter()
    cached = {}
    if truth_file is not None and truth_file.is_file():
        cached = {r["layer"]: r for r in json.loads(truth_file.read_text())}
    todo = [n for n in names if n not in cached]
    for r in truth(name, fp, q, todo):
        cached[r["layer"]] = r
    if truth_file is not None:
        truth_file.write_text(json.dumps(list(cached.values()), indent=1))
    seconds_truth = time.perf_counter() - t0
    rows = []
    for layer in names:
        r = base[layer]
        row = {"layer": layer, "type": r.type, "local_nmse": r.nmse, "weight_nmse": r.weight_nmse,
               "input_nmse": max((i.nmse for i in r.inputs), default=0.0), "saturation": r.saturation,
               **{f"output_nmse_k{k}": tables[k][layer].output_nmse for k in impacts if k > 0},
               "only_nmse": cached[layer]["only_nmse"], "revert_gain": cached[layer]["revert_gain"]}
        rows.append(row)
    out = {"model": name, "layers": len(rows), "calib_samples": base.samples,
           "full_int8_output_nmse": cached[names[0]]["full_int8_output_nmse"],
           "analyze_seconds": {k: round(t.seconds, 2) for k, t in tables.items()},
           "truth_seconds": seconds_truth, "rows": rows}
    only = [r["only_nmse"] for r in rows]
    signals = ["local_nmse", "weight_nmse", "input_nmse", "saturation"] + [f"output_nmse_k{k}" for k in impacts if k > 0]
    with_gain = [r for r in rows if r["revert_gain"] is not None]
    for signal in signals:
        vals = [r[signal] if r[signal] is not None else 0.0 for r in rows]
        out[f"spearman_{signal}_vs_only"] = round(spearman(vals, only), 3)
        if len(with_gain) > 2:
            out[f"spearman_{signal}_vs_revert"] = round(spearman([r[signal] or 0.0 for r in with_gain],
                                                                 [r["revert_gain"] for r in with_gain]), 3)
    top = lambda key: {r["layer"] for r in sorted(rows, key=lambda r: -(r[key] or 0))[:5]}  # noqa: E731
    for signal in ("local_nmse", *[f"output_nmse_k{k}" for k in impacts if k > 0]):
        out[f"top5_overlap_{signal}"] = len(top(signal) & top("only_nmse"))
    out["revert_layers"] = len(with_gain)
    if len(with_gain) > 2:
        out["spearman_only_vs_revert"] = round(spearman([r["only_nmse"] for r in with_gain],
                                                        [r["revert_gain"] for r in with_gain]), 3)
    return out


def timing(name: str, calib: int, impact: int | None) -> dict:
    import openvino as ov

    import ovq
    from ovq.ir.bridge import core
    from ovq.quantization.dataset import InputSpec, select_subset
    from quantize import calibration

    fp, q = _models(name)
    data = calibration(name)
    spec = InputSpec(fp)
    samples = [spec.arrays(s, i) for i, s in enumerate(select_subset(data, calib))]

    def fp_pass() -> float:
        t = time.perf_counter()
        compiled = core().compile_model(fp, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "THROUGHPUT"})
        queue = ov.AsyncInferQueue(compiled, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")) + 1)
        for s in samples:
            queue.start_async(s)
        queue.wait_all()
        return time.perf_counter() - t

    runs = []
    for _ in range(2):  # alternate, keep the best of each (the machine is shared)
        f = fp_pass()
        t = time.perf_counter()
        kwargs = {} if impact is None else {"impact_samples": impact}
        table = ovq.analyze(fp, q, data, subset_size=calib, progress=False, **kwargs)
        a = time.perf_counter() - t
        runs.append((f, a, table.timings))
    f = min(r[0] for r in runs)
    best = min(runs, key=lambda r: r[1])
    return {"model": name, "samples": len(samples), "impact_samples": table.impact_samples,
            "layers": len(table), "fp32_pass_s": f, "analyze_s": best[1],
            "ratio": best[1] / f, "analyze_phases": best[2]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["ranking", "timing"])
    p.add_argument("models", nargs="*")
    p.add_argument("--calib", type=int, default=100)
    p.add_argument("--layers", type=int, default=None)
    p.add_argument("--impact", type=int, default=None, help="timing: impact_samples (default: analyze's)")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--impacts", default="0,1,2,4", help="ranking: impact_samples values to compare")
    p.add_argument("--truth-dir", type=Path, default=None, help="ranking: cache of the true impacts")
    args = p.parse_args()
    results = []
    for name in args.models or (["resnet_like", "efficientnet_lite0"] if args.mode == "ranking"
                                else ["efficientnet_lite0", "minilm"]):
        if args.mode == "ranking":
            truth_file = args.truth_dir / f"truth_{name}.json" if args.truth_dir else None
            r = ranking(name, args.calib, args.layers, [int(k) for k in args.impacts.split(",")], truth_file)
        else:
            r = timing(name, args.calib, args.impact)
        results.append(r)
        print(json.dumps({k: v for k, v in r.items() if k != "rows"}, indent=1), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
