"""Accuracy of ovq vs NNCF INT8 models under every CPU ISA the machine has.

Usage (from outside the repository root)::

    python bench/accuracy.py [--models M ...] [--isas ISA,...] [--skip-ac] [--json OUT]

(default models: digits resnet_like efficientnet_lite0 minilm; default ISAs: AVX2,
AVX2_VNNI, AVX512_CORE_VNNI, AVX512_CORE_AMX, of which only those the CPU has are run;
``SSE41`` and ``AVX512_CORE`` may be asked for too.)

Each model is quantized once per tool, each in a fresh process with the machine's own
ISA, on the same calibration samples:

- ``nncf``: ``nncf.quantize`` with its defaults (``subset_size=300``;
  ``model_type=TRANSFORMER`` for MiniLM);
- ``ovq``: ``ovq.quantize`` with its defaults (the same subset size and model type);
- ``nncf-ac`` / ``ovq-ac`` (unless ``--skip-ac``): ``quantize_with_accuracy_control``
  of either tool with ``max_drop=0.01``, ``drop_type`` absolute, the same calibration
  data, and one ``validation_fn(compiled_model, data) -> float`` (the mean of a
  per-item score over the validation items, higher is better), wrapped with a call
  counter. The ovq rows are skipped, with a note, when ``ovq`` has no
  ``quantize_with_accuracy_control``. NNCF's ranks layers with one call per validation
  item per candidate: on 2 cores its EfficientNet-Lite0 run alone takes over 20 minutes
  (``--skip-ac``, or ``--models`` without it, for a run of about 10).

Every saved model (``compress_to_fp16=False``) is then evaluated, next to the FP32
model, in one subprocess per ISA whose environment sets ``ONEDNN_MAX_CPU_ISA`` (oneDNN
fixes the ISA at its first query, so one process per ISA), compiled on CPU with
``INFERENCE_PRECISION_HINT=f32``. The runtime audit of each model under that ISA (as
``ovq.quantization.runtime_audit``, read once the evaluation has run, so that layers with
dynamic shapes name their kernel) gives its INT8 layer count, its layers left in float,
and the ``primitiveType`` of its first INT8 convolution (else first INT8 layer), shown
next to the FP32 model's: the kernel family that ran (``jit_avx2_I8``, ``jit_sse42_I8``;
oneDNN's ``jit_gemm`` names no ISA, the FP32 kernel beside it does).
An ISA above what the CPU has would silently fall back to the highest one it has, so
such ISAs are listed as unavailable and not run.

Metrics (loaders and metrics of ``bench/quantize.py``): digits accuracy on 450 test
images (calibration: 300 train images); resnet_like top-1 agreement with FP32 and
logit SQNR on 50 N(0,1) inputs (calibration: 300 N(0,1) inputs); EfficientNet-Lite0
top-1 agreement with FP32 on crops 300..599 (calibration: crops 0..299); MiniLM
embedding cosine to FP32 over the 71 sentences (calibration: every second sentence).
Accuracy control validates on the same evaluation items, one inference per item:
digits correct-label rate, resnet_like and EfficientNet-Lite0 FP32-top-1 agreement,
MiniLM mean cosine to the FP32 embedding; the drop it must keep is to FP32's value
(1.0 for agreement and cosine).

Goals (marked met/missed per model and ISA): defaults: EfficientNet-Lite0 agreement
>= 0.90, MiniLM mean cosine >= 0.998, resnet_like SQNR >= NNCF's, digits accuracy =
FP32's; accuracy control: the drop met wherever NNCF meets it, no more layers left in
float than NNCF's, <= 0.5x NNCF's time and fewer ``validation_fn`` calls. Times are
given as ratios within the run: the machine may be shared.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

# The test assets live with the tests (tests/ovq_testing), not in the installed ovq.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

MODELS = ["digits", "resnet_like", "efficientnet_lite0", "minilm"]
DEFAULT_ISAS = ["AVX2", "AVX2_VNNI", "AVX512_CORE_VNNI", "AVX512_CORE_AMX"]
TOOLS = ["nncf", "ovq"]
AC_TOOLS = ["nncf-ac", "ovq-ac"]
MAX_DROP = 0.01

# /proc/cpuinfo flags each ONEDNN_MAX_CPU_ISA value needs (oneDNN's ISA ladder:
# SSE41 < AVX2 < AVX2_VNNI; AVX2 < AVX512_CORE < ..._VNNI < ..._BF16 < ..._FP16 < ..._AMX).
_AVX512_CORE = {"avx512f", "avx512bw", "avx512vl", "avx512dq"}
ISA_FLAGS = {
    "SSE41": {"sse4_1"},
    "AVX2": {"avx2"},
    "AVX2_VNNI": {"avx2", "avx_vnni"},
    "AVX512_CORE": _AVX512_CORE,
    "AVX512_CORE_VNNI": _AVX512_CORE | {"avx512_vnni"},
    "AVX512_CORE_AMX": _AVX512_CORE | {"avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16"},
}
SHOWN_FLAGS = ["sse4_1", "avx2", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
               "amx_tile", "amx_int8", "amx_bf16"]

# (metric key in the evaluation row, label, FP32 value key or constant); the first is
# the one accuracy control is judged on.
METRICS = {
    "digits": [("acc_int8", "accuracy", "acc_fp32")],
    "resnet_like": [("agreement", "top-1 agreement", 1.0), ("sqnr_db", "SQNR dB", None)],
    "efficientnet_lite0": [("agreement", "top-1 agreement", 1.0)],
    "minilm": [("cos_mean", "cosine mean", 1.0)],
}


def _bench_quantize():
    """``bench/quantize.py`` as a module: its calibration and evaluation loaders."""
    spec = importlib.util.spec_from_file_location("ovq_bench_quantize", Path(__file__).with_name("quantize.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------ machine


def cpu_info() -> tuple[str, set[str]]:
    """(CPU model name, flags) from /proc/cpuinfo."""
    name, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and name == "unknown":
                    name = value.strip()
                elif key == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return name, {"avx512_vnni" if f == "avx512vnni" else f for f in flags}


def available_isas(flags: set[str]) -> list[str]:
    return [isa for isa, need in ISA_FLAGS.items() if need <= flags]


# ------------------------------------------------------------------ validation


def validation_items(name: str) -> list[tuple]:
    """``(model input, reference)`` per evaluation item. The reference is the label
    (digits), the FP32 top-1 class (resnet_like, EfficientNet-Lite0) or the FP32
    sentence embedding (MiniLM), from the FP32 model run one item at a time."""
    import openvino as ov

    from ovq.runtime import compile_model
    from ovq_testing import assets

    if name == "digits":
        x, labels = assets.digits_data("test")
        return [(x[i : i + 1], int(labels[i])) for i in range(len(x))]
    if name == "resnet_like":
        inputs = assets.random_inputs(n=50, seed=2)
    elif name == "efficientnet_lite0":
        crops = assets.efficientnet_crops(600)
        inputs = [np.array(crops[i : i + 1]) for i in range(300, 600)]
    elif name == "minilm":
        inp = assets.minilm_inputs()
        inputs = [{k: v[i : i + 1] for k, v in inp.items()} for i in range(len(inp["input_ids"]))]
    else:
        raise SystemExit(f"unknown model {name}")
    fp = compile_model(ov.Core().read_model(str(assets.asset_path(name))))
    req = fp.create_infer_request()
    return [(x, _reference(name, _first_output(req, fp, x), x)) for x in inputs]


def _first_output(req, compiled, x) -> np.ndarray:
    return np.array(req.infer(x if isinstance(x, dict) else [x])[compiled.output(0)])


def _reference(name: str, out: np.ndarray, x):
    if name == "minilm":
        from ovq_testing.assets import mean_pool_normalize

        return mean_pool_normalize(out, x["attention_mask"])[0]
    return int(out.argmax())


def make_validation_fn(name: str):
    """``(validation_fn, calls)``: the mean per-item score of a compiled model over
    validation items, higher is better; ``calls[0]`` counts its calls."""
    calls = [0]

    def validation_fn(compiled_model, data) -> float:
        calls[0] += 1
        req = compiled_model.create_infer_request()
        scores = []
        for x, ref in data:
            out = _first_output(req, compiled_model, x)
            if name == "minilm":
                scores.append(float(_reference(name, out, x) @ ref))
            else:
                scores.append(float(out.argmax() == ref))
        return float(np.mean(scores))

    return validation_fn, calls


# ------------------------------------------------------------------ quantization child


def quantize_child(tool: str, name: str, out: str, result_path: str) -> None:
    """Quantize ``name`` with ``tool``; save the model to ``out`` and a JSON result."""
    import openvino as ov

    from ovq_testing.assets import asset_path

    model = ov.Core().read_model(str(asset_path(name)))
    samples = _bench_quantize().calibration(name)
    transformer = name == "minilm"
    result: dict = {"tool": tool, "model": name}
    ac = tool.endswith("-ac")
    if ac:
        items = validation_items(name)
        validation_fn, calls = make_validation_fn(name)
    if tool.startswith("ovq"):
        import ovq

        kwargs = {"model_type": "transformer"} if transformer else {}
        t = time.perf_counter()
        if ac:
            q = ovq.quantize_with_accuracy_control(model, samples, items, validation_fn, max_drop=MAX_DROP,
                                                   drop_type="absolute", subset_size=300, **kwargs)
        else:
            q = ovq.quantize(model, samples, subset_size=300, **kwargs)
        result["seconds"] = time.perf_counter() - t
    else:
        import logging

        import nncf

        logging.getLogger("nncf").setLevel(logging.ERROR)
        kwargs = {"model_type": nncf.ModelType.TRANSFORMER} if transformer else {}
        t = time.perf_counter()
        if ac:
            q = nncf.quantize_with_accuracy_control(
                model, nncf.Dataset(samples), nncf.Dataset(items, lambda item: item[0]), validation_fn,
                max_drop=MAX_DROP, drop_type=nncf.DropType.ABSOLUTE, subset_size=300, **kwargs)
        else:
            q = nncf.quantize(model, nncf.Dataset(samples), subset_size=300, **kwargs)
        result["seconds"] = time.perf_counter() - t
    if ac:
        result["validation_calls"] = calls[0]
    ov.save_model(q, out, compress_to_fp16=False)
    Path(result_path).write_text(json.dumps(result))


# ------------------------------------------------------------------ evaluation child


def _audit(compiled, model):
    """``runtime_audit``'s report, read from ``compiled`` after it has run: layers with a
    dynamic shape name their kernel (``primitiveType``) only once they have executed,
    ``undef`` before."""
    from ovq.quantization.audit import AUDITED_LAYER_TYPES, MATMUL_LIKE_IR_TYPES, AuditEntry, AuditReport

    matmul_like = {op.get_friendly_name() for op in model.get_ops() if op.get_type_name() in MATMUL_LIKE_IR_TYPES}
    entries = []
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()

        def rt(key: str) -> str:
            try:
                return str(info[key].astype(str))
            except (KeyError, RuntimeError, IndexError):
                return ""

        layer_type = rt("layerType")
        originals = tuple(x for x in rt("originalLayersNames").split(",") if x)
        if layer_type in AUDITED_LAYER_TYPES or (layer_type == "Subgraph" and not matmul_like.isdisjoint(originals)):
            entries.append(AuditEntry(op.get_friendly_name(), layer_type, rt("runtimePrecision"),
                                      rt("primitiveType"), originals))
    return AuditReport(entries)


def _kernel(entries, int8: bool = True) -> str:
    """primitiveType of the first (INT8) convolution, else of the first (INT8) layer."""
    chosen = [e for e in entries if e.int8 or not int8]
    conv = [e for e in chosen if "Convolution" in e.layer_type]
    return (conv or chosen)[0].primitive_type if chosen else "-"


def _error_line(exc: Exception) -> str:
    """The most specific line of an OpenVINO error (its last non-empty one)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


def evaluate_child(spec_path: str, result_path: str) -> None:
    """Evaluate the FP32 and every quantized model of the spec under this process's ISA."""
    import openvino as ov

    from ovq.runtime import compile_model
    from ovq_testing.assets import asset_path

    bq = _bench_quantize()
    spec = json.loads(Path(spec_path).read_text())
    core = ov.Core()
    rows: dict = {}
    for name, paths in spec.items():
        fp_model = core.read_model(str(asset_path(name)))
        batches, metric = bq.evaluation(name)
        try:
            fp = compile_model(fp_model)
            fp_out = bq._run(fp, batches)
        except RuntimeError as exc:  # the plugin may not run every model under every ISA
            rows[name] = {"error": "FP32: " + _error_line(exc)}
            continue
        row = {"fp32_kernel": _kernel(_audit(fp, fp_model).entries, int8=False)}
        for tool, path in paths.items():
            model = core.read_model(path)
            try:
                compiled = compile_model(model)
                res = metric(fp_out, bq._run(compiled, batches))
            except RuntimeError as exc:
                row[tool] = {"error": _error_line(exc)}
                continue
            audit = _audit(compiled, model)
            res.update(int8=audit.int8_count, layers=len(audit.entries), float_layers=len(audit.fallbacks),
                       kernel=_kernel(audit.entries),
                       kernels=dict(Counter(e.primitive_type for e in audit.entries if e.int8)))
            row[tool] = res
        rows[name] = row
    Path(result_path).write_text(json.dumps(rows))


# ------------------------------------------------------------------ parent


def _child(args: list[str], env: dict, what: str, script: str = __file__) -> None:
    """Run ``script`` (this bench by default) with ``args`` in a fresh interpreter; exit on failure."""
    proc = subprocess.run([sys.executable, str(Path(script).resolve()), *args], env=env,
                          capture_output=True, text=True, cwd=tempfile.gettempdir())
    if proc.returncode:
        raise SystemExit(f"{what} failed:\n{proc.stderr[-3000:]}")


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) <= 1.0 else f"{v:.2f}"
    return str(v)


def _ok(res: dict | None) -> bool:
    return res is not None and "error" not in res


def defaults_goal(name: str, row: dict) -> str:
    o, n = row.get("ovq"), row.get("nncf")
    if not _ok(o):
        return "- (the ovq model did not run)"
    if name == "digits":
        ok, text = o["acc_int8"] >= o["acc_fp32"], f"acc {o['acc_int8']:.4f} vs FP32 {o['acc_fp32']:.4f}"
    elif name == "resnet_like":
        if not _ok(n):
            return "- (the NNCF model did not run)"
        ok, text = o["sqnr_db"] >= n["sqnr_db"], f"SQNR {o['sqnr_db']:.2f} vs NNCF {n['sqnr_db']:.2f} dB"
    elif name == "efficientnet_lite0":
        ok, text = o["agreement"] >= 0.90, f"{o['agreement']:.4f} vs >= 0.90"
    elif name == "minilm":
        ok, text = o["cos_mean"] >= 0.998, f"{o['cos_mean']:.4f} vs >= 0.998"
    else:
        return "-"
    return ("met" if ok else "MISSED") + f" ({text})"


def _drop(name: str, res: dict) -> float:
    key, _label, ref = METRICS[name][0]
    fp = res[ref] if isinstance(ref, str) else ref
    return fp - res[key]


def ac_goal(name: str, row: dict, quant: dict) -> tuple[str, dict]:
    """Goal text and the numbers it was judged on, for one model under one ISA."""
    n, o = row.get("nncf-ac"), row.get("ovq-ac")
    if n is None or o is None:
        return "-", {}
    qn, qo = quant[(name, "nncf-ac")], quant[(name, "ovq-ac")]
    fig = {"drop_nncf": _drop(name, n), "drop_ovq": _drop(name, o),
           "float_layers_nncf": n["float_layers"], "float_layers_ovq": o["float_layers"],
           "time_ratio": qo["seconds"] / qn["seconds"],
           "calls_nncf": qn["validation_calls"], "calls_ovq": qo["validation_calls"]}
    eps = 1e-9
    nncf_meets = fig["drop_nncf"] <= MAX_DROP + eps
    misses = []
    if nncf_meets and fig["drop_ovq"] > MAX_DROP + eps:
        misses.append("drop")
    if nncf_meets and fig["float_layers_ovq"] > fig["float_layers_nncf"]:
        misses.append("float layers")
    if fig["time_ratio"] > 0.5:
        misses.append("time")
    if fig["calls_ovq"] >= fig["calls_nncf"]:
        misses.append("calls")
    text = "met" if not misses else "MISSED: " + ", ".join(misses)
    if not nncf_meets:
        text += " (NNCF misses the drop)"
    return text, fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    ap.add_argument("--isas", default=",".join(DEFAULT_ISAS),
                    help="comma-separated ONEDNN_MAX_CPU_ISA values (of " + ", ".join(ISA_FLAGS) + ")")
    ap.add_argument("--skip-ac", action="store_true", help="no accuracy-control rows")
    ap.add_argument("--json", metavar="OUT", help="write every figure to this JSON file")
    ap.add_argument("--quantize-child", nargs=4, metavar=("TOOL", "MODEL", "OUT", "RESULT"), help=argparse.SUPPRESS)
    ap.add_argument("--evaluate-child", nargs=2, metavar=("SPEC", "RESULT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quantize_child:
        quantize_child(*args.quantize_child)
        return
    if args.evaluate_child:
        evaluate_child(*args.evaluate_child)
        return

    import openvino as ov

    import ovq

    cpu, flags = cpu_info()
    have = available_isas(flags)
    asked = [s.strip().upper() for s in args.isas.split(",") if s.strip()]
    unknown = [isa for isa in asked if isa not in ISA_FLAGS]
    if unknown:
        raise SystemExit(f"unknown ISA {', '.join(unknown)}; choose from {', '.join(ISA_FLAGS)}")
    isas = [isa for isa in asked if isa in have]
    missing = [isa for isa in asked if isa not in have]
    tools = list(TOOLS)
    notes = []
    if not args.skip_ac:
        tools.append("nncf-ac")
        if hasattr(ovq, "quantize_with_accuracy_control"):
            tools.append("ovq-ac")
        else:
            notes.append("ovq has no quantize_with_accuracy_control: the ovq accuracy-control rows are skipped")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if not isas:
        raise SystemExit(f"none of the asked ISAs ({', '.join(asked)}) is available on this CPU ({cpu})")

    import nncf

    machine = {"cpu": cpu, "cores": os.cpu_count(), "flags": [f for f in SHOWN_FLAGS if f in flags],
               "isas_available": have, "isas_run": isas, "isas_unavailable": missing,
               "openvino": ov.__version__, "nncf": nncf.__version__, "ovq": ovq.__version__}
    env = dict(os.environ, OVQ_NO_PROGRESS="1", PYTHONWARNINGS="ignore")
    env.pop("ONEDNN_MAX_CPU_ISA", None)
    quant: dict = {}
    evals: dict = {}
    t_run = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ovq-accbench-") as tmp:
        spec: dict = {}
        for i, name in enumerate(args.models):
            spec[name] = {}
            # alternate which tool goes first, model by model
            order = sorted(tools, key=lambda t: (t.endswith("-ac"), t.startswith("ovq") == (i % 2 == 0)))
            for tool in order:
                out, res = str(Path(tmp) / f"{name}_{tool}.xml"), str(Path(tmp) / f"{name}_{tool}.json")
                _child(["--quantize-child", tool, name, out, res], env, f"{tool} on {name}")
                quant[(name, tool)] = json.loads(Path(res).read_text())
                spec[name][tool] = out
                print(f"quantized {name} with {tool} ({quant[(name, tool)]['seconds']:.1f} s)", file=sys.stderr)
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        for isa in isas:
            res = str(Path(tmp) / f"eval_{isa}.json")
            _child(["--evaluate-child", str(spec_path), res], dict(env, ONEDNN_MAX_CPU_ISA=isa), f"evaluation under {isa}")
            evals[isa] = json.loads(Path(res).read_text())
            print(f"evaluated under {isa}", file=sys.stderr)
    run_seconds = time.perf_counter() - t_run

    # ---- report
    print(f"CPU: {cpu}, {os.cpu_count()} cores; flags: {' '.join(machine['flags'])}")
    print(f"ISAs run: {', '.join(isas)}" + (f"; not available on this CPU: {', '.join(missing)}" if missing else ""))
    print(f"OpenVINO {ov.__version__}, NNCF {nncf.__version__}, ovq {ovq.__version__}")
    for note in notes:
        print(f"note: {note}")
    print()
    shown = [t for t in ("nncf", "ovq", "nncf-ac", "ovq-ac") if t in tools]
    head = f"{'model':<19} {'ISA':<17} {'kernel: INT8 (ovq) | FP32':<38} {'metric':<16} {'FP32':>7} " + \
        " ".join(f"{t:>8}" for t in shown) + "  INT8 layers " + "|".join(shown) + "  goal (defaults)"
    print(head)
    table = []
    for name in args.models:
        for isa in isas:
            row = evals[isa][name]
            if "error" in row:
                print(f"{name:<19} {isa:<17} evaluation failed: {row['error']}")
                table.append({"model": name, "isa": isa, "error": row["error"]})
                continue
            kern = f"{row['ovq'].get('kernel', 'error')} | {row['fp32_kernel']}"
            if _ok(row["nncf"]) and row["nncf"]["kernel"] != row["ovq"].get("kernel"):
                kern += f" (NNCF {row['nncf']['kernel']})"
            ok = [t for t in shown if _ok(row[t])]
            for k, (key, label, ref) in enumerate(METRICS[name]):
                fp = (row[ok[0]][ref] if ok else None) if isinstance(ref, str) else ref
                vals = " ".join(f"{_fmt(row[t][key]) if t in ok else 'error':>8}" for t in shown)
                first = k == 0
                layers = "|".join(f"{row[t]['int8']}/{row[t]['layers']}" if t in ok else "error"
                                  for t in shown) if first else ""
                goal = defaults_goal(name, row) if first else ""
                print(f"{name if first else '':<19} {isa if first else '':<17} {kern if first else '':<38} "
                      f"{label:<16} {_fmt(fp):>7} {vals}  {layers:<{12 + len('|'.join(shown))}} {goal}")
            for t in shown:
                if t not in ok:
                    print(f"{'':<19} {'':<17} {t} model failed: {row[t]['error']}")
            table.append({"model": name, "isa": isa, "fp32_kernel": row["fp32_kernel"],
                          **{t: row[t] for t in shown}, "goal_defaults": defaults_goal(name, row)})
    ac_rows = []
    if "nncf-ac" in tools:
        print()
        print(f"accuracy control (max_drop {MAX_DROP} absolute; drop = FP32 value - INT8 value of the first metric; "
              "float layers = audited Conv/MatMul layers not running INT8)")
        print(f"{'model':<19} {'ISA':<17} {'drop nncf':>9} {'drop ovq':>9} {'float nncf':>10} {'float ovq':>9} "
              f"{'time ovq/nncf':>13} {'calls nncf':>10} {'calls ovq':>9}  goal")
        for name in args.models:
            for isa in isas:
                row = evals[isa][name]
                failed = row.get("error") or next((row[t]["error"] for t in AC_TOOLS if t in tools
                                                   and not _ok(row[t])), None)
                if failed:
                    print(f"{name:<19} {isa:<17} evaluation failed: {failed}")
                    ac_rows.append({"model": name, "isa": isa, "error": failed})
                    continue
                n = row["nncf-ac"]
                calls_n = quant[(name, "nncf-ac")]["validation_calls"]
                if "ovq-ac" in tools:
                    goal, fig = ac_goal(name, row, quant)
                    print(f"{name:<19} {isa:<17} {fig['drop_nncf']:>9.4f} {fig['drop_ovq']:>9.4f} "
                          f"{fig['float_layers_nncf']:>10} {fig['float_layers_ovq']:>9} {fig['time_ratio']:>13.2f} "
                          f"{calls_n:>10} {fig['calls_ovq']:>9}  {goal}")
                else:
                    goal, fig = "- (no ovq accuracy control)", {"drop_nncf": _drop(name, n),
                                                                "float_layers_nncf": n["float_layers"],
                                                                "calls_nncf": calls_n}
                    print(f"{name:<19} {isa:<17} {fig['drop_nncf']:>9.4f} {'-':>9} {fig['float_layers_nncf']:>10} "
                          f"{'-':>9} {'-':>13} {calls_n:>10} {'-':>9}  {goal}")
                ac_rows.append({"model": name, "isa": isa, "goal": goal, **fig})
    print()
    ratios = {name: {t: quant[(name, t)]["seconds"] / quant[(name, "nncf")]["seconds"] for t in tools}
              for name in args.models}
    print("quantization time / NNCF defaults' time (same run): " + "; ".join(
        f"{name} " + ", ".join(f"{t} {r:.2f}" for t, r in ratios[name].items() if t != "nncf")
        for name in args.models))
    print(f"bench run: {run_seconds / 60:.1f} min")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": machine, "notes": notes, "models": args.models, "tools": tools, "max_drop": MAX_DROP,
            "quantize": [quant[(name, t)] for name in args.models for t in tools],
            "time_vs_nncf_defaults": ratios, "rows": table, "accuracy_control": ac_rows,
            "run_seconds": run_seconds}, indent=1))


if __name__ == "__main__":
    main()
