"""FP32-vs-INT8 agreement of ovq and NNCF on the unlabelled real models of the asset set.

Usage (from outside the repository root)::

    python bench/zoo_accuracy.py [--models M ...] [--inputs real|noise] [--isa ISA]
                                 [--ovq-option KEY=VALUE ...] [--save-dir DIR] [--json OUT]

Models (``tests/ovq_testing/assets.py``): ``silero_vad``, ``ddddocr/common``,
``ddddocr/common_old``, ``ddddocr/common_det``, ``fer``. None ships labelled data, so
each INT8 model is compared with its FP32 model on held-out inputs.

Inputs, deterministic, 128 calibration and 64 evaluation samples per model (``fer``:
100 and 100), calibration and evaluation drawn with different seeds or from different
items:

- ``--inputs real`` (default), made from data shipped with scikit-image where it has
  something fitting:

  - ddddocr recognisers (input ``[1,1,64,W]``, grayscale in [0, 1] as ddddocr feeds
    them): crops of one to two lines of ``skimage.data.page()`` (every fourth of
    ``text()``) with a 2.5:1 aspect, resized to 64x160;
  - ddddocr detector (``[1,3,416,416]``, BGR pixels 0..255 letterboxed with 114 as
    ddddocr's ``preproc``): random crops of scikit-image's photographs and text
    images, letterboxed to 416;
  - ``fer`` (``[1,64,64,1]`` in [-1, 1] as fer feeds it): the 100 faces of
    ``skimage.data.lfw_subset()`` (25x25) and their mirror images, resized to 64x64;
    faces 0..49 calibrate, 50..99 evaluate;
  - ``silero_vad``: no audio ships with any installed package: uniform noise in
    +-0.1 and a zero ``state``, as ``example_inputs``.

- ``--inputs noise``: ``example_inputs``' recipe for every model (uniform [0, 1)
  images, recognisers at width 160; silero audio noise in +-0.1 and a zero state),
  seeds 1 (calibration) and 2 (evaluation).

Each model is quantized by ``nncf.quantize`` (NNCF 3.4) and by ``ovq.quantize``, both
with their defaults (``--ovq-option`` adds ovq keyword arguments, e.g.
``overflow_fix=enable``) and ``subset_size`` = every calibration sample, each in a fresh
process, and saved with ``compress_to_fp16=False``. One more process, with
``ONEDNN_MAX_CPU_ISA`` set (default ``AVX2``), compiles the FP32 model and both INT8
models on CPU with ``INFERENCE_PRECISION_HINT=f32`` and runs the evaluation samples one
at a time. Metrics against FP32:

- SQNR in dB of every output: 10 log10(sum ref^2 / sum (ref - int8)^2) over all
  evaluation samples (silero: speech probability and state; detector: the [1,3549,6]
  box/objectness/class tensor, and its score columns 4..5 on their own);
- recognisers: per-timestep argmax agreement and decoded-string agreement (CTC: merge
  repeats, drop class 0);
- ``fer``: top-1 agreement of the 7 emotion scores;
- INT8 layers: the runtime audit (``bench/accuracy.py``'s ``_audit``, as
  ``ovq.quantization.runtime_audit``) counts Convolution/MatMul-like runtime layers
  that run INT8, out of all of them.

The table gives NNCF's and ovq's value per metric, whether ovq's is at least NNCF's
(agreements exactly; SQNR within 0.05 dB), and ovq's quantization time as a ratio to
NNCF's in the same run (the machine may be shared; the load average is printed).
``--save-dir`` keeps the models and the evaluation samples (``<model>_eval.npz``, one
array per input, stacked on a leading sample axis) for ``ovq analyze``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# The test assets live with the tests (tests/ovq_testing), not in the installed ovq.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

MODELS = ["silero_vad", "ddddocr/common", "ddddocr/common_old", "ddddocr/common_det", "fer"]
TOOLS = ["nncf", "ovq"]
RECOGNISERS = {"ddddocr/common", "ddddocr/common_old"}
N_CAL, N_EVAL = 128, 64
REC_WIDTH = 160
SQNR_TIE_DB = 0.05


def _bench_accuracy():
    """``bench/accuracy.py`` as a module: ISA detection and the runtime audit."""
    spec = importlib.util.spec_from_file_location("ovq_bench_accuracy", Path(__file__).with_name("accuracy.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------ inputs


def _noise(name: str, n: int, seed: int) -> list[dict[str, np.ndarray]]:
    """``n`` samples of ``example_inputs``' recipe for ``name``, from one seed."""
    import openvino as ov

    from ovq_testing.assets import asset_path

    model = ov.Core().read_model(str(asset_path(name)))
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n):
        sample = {}
        for port in model.inputs:
            shape = [d.get_length() if d.is_static else (REC_WIDTH if i == 3 and name in RECOGNISERS else 1)
                     for i, d in enumerate(port.get_partial_shape())]
            key = port.get_any_name()
            if name == "silero_vad" and key == "state":
                sample[key] = np.zeros(shape, np.float32)
            elif name == "silero_vad":
                sample[key] = ((rng.random(shape) * 2 - 1) * 0.1).astype(np.float32)
            else:
                sample[key] = rng.random(shape).astype(np.float32)
        samples.append(sample)
    return samples


def _text_crops(n: int, seed: int) -> list[np.ndarray]:
    """Grayscale crops of scikit-image's text images, 2.5:1, resized to 64x160, in [0, 1]."""
    from skimage import data
    from skimage.transform import resize

    # (image, crop heights): one to two lines of text in either
    pages = [(data.page(), (18, 36)), (data.text(), (30, 70))]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img, (lo, hi) = pages[i % 4 == 0]  # the recognisers read few of text()'s slanted formulas
        h = int(rng.integers(lo, hi + 1))
        w = int(h * 2.5)
        y, x = int(rng.integers(0, img.shape[0] - h + 1)), int(rng.integers(0, img.shape[1] - w + 1))
        crop = resize(img[y : y + h, x : x + w] / 255.0, (64, REC_WIDTH), anti_aliasing=True)
        out.append(crop.astype(np.float32)[None, None])
    return out


def _det_images(n: int, seed: int) -> list[np.ndarray]:
    """Random crops of scikit-image's photographs and text pages, letterboxed to 416x416
    with 114 as ddddocr's detector ``preproc`` does: BGR, 0..255, NCHW float."""
    from skimage import data
    from skimage.color import gray2rgb
    from skimage.transform import resize

    names = ["astronaut", "coffee", "chelsea", "rocket", "camera", "text", "page", "coins"]
    images = []
    for name in names:
        img = getattr(data, name)()
        images.append(gray2rgb(img) if img.ndim == 2 else img[..., :3])
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = images[i % len(images)]
        h = int(rng.integers(img.shape[0] // 3, img.shape[0] + 1))
        w = int(rng.integers(img.shape[1] // 3, img.shape[1] + 1))
        y, x = int(rng.integers(0, img.shape[0] - h + 1)), int(rng.integers(0, img.shape[1] - w + 1))
        r = min(416 / h, 416 / w)
        nh, nw = int(h * r), int(w * r)
        canvas = np.full((416, 416, 3), 114, np.uint8)
        canvas[:nh, :nw] = (resize(img[y : y + h, x : x + w], (nh, nw), preserve_range=True) + 0.5).astype(np.uint8)
        out.append(np.ascontiguousarray(canvas[..., ::-1].transpose(2, 0, 1), np.float32)[None])
    return out


def _faces(part: int) -> list[np.ndarray]:
    """``lfw_subset`` faces 0..49 (part 0) or 50..99 (part 1) and their mirror images,
    64x64 in [-1, 1], NHWC."""
    from skimage import data
    from skimage.transform import resize

    faces = data.lfw_subset()[:100][part * 50 : part * 50 + 50]
    faces = [resize(f, (64, 64)) for f in faces]
    faces += [f[:, ::-1] for f in faces]
    return [np.ascontiguousarray((f * 2 - 1).astype(np.float32)[None, :, :, None]) for f in faces]


def samples(name: str, split: str, kind: str) -> list[dict[str, np.ndarray]]:
    """Calibration (``split="cal"``) or evaluation (``"eval"``) samples of ``name``, as
    dicts by input name."""
    seed = 1 if split == "cal" else 2
    n = N_CAL if split == "cal" else N_EVAL
    if kind == "noise" or name == "silero_vad":
        return _noise(name, n, seed)
    if name in RECOGNISERS:
        return [{"input1": x} for x in _text_crops(n, seed)]
    if name == "ddddocr/common_det":
        return [{"images": x} for x in _det_images(n, seed)]
    if name == "fer":
        return [{"x": x} for x in _faces(0 if split == "cal" else 1)]
    raise SystemExit(f"unknown model {name}")


# ------------------------------------------------------------------ quantization child


def quantize_child(tool: str, name: str, kind: str, options: str, out: str, result_path: str) -> None:
    """Quantize ``name`` with ``tool`` on its calibration samples; save the model to
    ``out`` and ``{"seconds": ...}`` (or ``{"error": ...}``) to ``result_path``."""
    import openvino as ov

    from ovq_testing.assets import asset_path

    model = ov.Core().read_model(str(asset_path(name)))
    data = samples(name, "cal", kind)
    result: dict = {"tool": tool, "model": name}
    try:
        if tool == "ovq":
            import ovq

            t = time.perf_counter()
            q = ovq.quantize(model, data, subset_size=len(data), **json.loads(options))
        else:
            import logging

            import nncf

            logging.getLogger("nncf").setLevel(logging.ERROR)
            t = time.perf_counter()
            q = nncf.quantize(model, nncf.Dataset(data), subset_size=len(data))
        result["seconds"] = time.perf_counter() - t
        ov.save_model(q, out, compress_to_fp16=False)
    except Exception as exc:  # a tool failing on a model is a result, not a bench failure
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        result["error"] = f"{type(exc).__name__}: {lines[-1] if lines else ''}"
    Path(result_path).write_text(json.dumps(result))


# ------------------------------------------------------------------ evaluation child


def sqnr_db(ref: np.ndarray, out: np.ndarray) -> float:
    noise = float(((ref.astype(np.float64) - out) ** 2).sum())
    signal = float((ref.astype(np.float64) ** 2).sum())
    return float("inf") if noise == 0 else 10 * np.log10(signal / noise)


def ctc_decode(logits: np.ndarray) -> tuple[int, ...]:
    """Greedy CTC over ``[T, 1, C]`` logits: merge repeats, drop the blank (class 0)."""
    best = logits[:, 0, :].argmax(-1)
    keep = np.r_[True, best[1:] != best[:-1]] & (best != 0)
    return tuple(int(c) for c in best[keep])


def metrics(name: str, ref: list[list[np.ndarray]], out: list[list[np.ndarray]], names: list[str]) -> dict:
    """Metrics of one INT8 model's outputs against FP32's, per evaluation sample lists of
    outputs (in the model's output order, named ``names``)."""
    res = {}
    for k, oname in enumerate(names):
        res[f"sqnr_db:{oname}"] = sqnr_db(np.concatenate([r[k].ravel() for r in ref]),
                                          np.concatenate([o[k].ravel() for o in out]))
    if name in RECOGNISERS:
        steps = [(r[0][:, 0].argmax(-1) == o[0][:, 0].argmax(-1)) for r, o in zip(ref, out)]
        res["timestep_agreement"] = float(np.concatenate(steps).mean())
        res["string_agreement"] = float(np.mean([ctc_decode(r[0]) == ctc_decode(o[0]) for r, o in zip(ref, out)]))
    elif name == "ddddocr/common_det":
        res["sqnr_db:scores"] = sqnr_db(np.concatenate([r[0][..., 4:].ravel() for r in ref]),
                                        np.concatenate([o[0][..., 4:].ravel() for o in out]))
    elif name == "fer":
        res["top1_agreement"] = float(np.mean([r[0].argmax() == o[0].argmax() for r, o in zip(ref, out)]))
    return res


def _run(compiled, data: list[dict]) -> list[list[np.ndarray]]:
    req = compiled.create_infer_request()
    outs = []
    for x in data:
        res = req.infer(x)
        outs.append([np.array(res[port]) for port in compiled.outputs])
    return outs


def evaluate_child(spec_path: str, result_path: str) -> None:
    """Evaluate the FP32 and quantized models of the spec under this process's ISA."""
    import openvino as ov

    from ovq.runtime import compile_model
    from ovq_testing.assets import asset_path

    acc = _bench_accuracy()
    spec = json.loads(Path(spec_path).read_text())
    core = ov.Core()
    rows: dict = {}
    for name, entry in spec["models"].items():
        data = samples(name, "eval", spec["inputs"])
        if spec.get("save_dir"):
            np.savez(Path(spec["save_dir"]) / f"{name.replace('/', '_')}_eval.npz",
                     **{k: np.concatenate([x[k] for x in data]) for k in data[0]})
        fp_model = core.read_model(str(asset_path(name)))
        fp = compile_model(fp_model)
        names = [min(port.get_names(), key=len) for port in fp_model.outputs]
        ref = _run(fp, data)
        row: dict = {"outputs": names}
        for tool, path in entry.items():
            model = core.read_model(path)
            try:
                compiled = compile_model(model)
                res = metrics(name, ref, _run(compiled, data), names)
            except Exception as exc:
                row[tool] = {"error": acc._error_line(exc)}
                continue
            audit = acc._audit(compiled, model)
            res.update(int8=audit.int8_count, layers=len(audit.entries),
                       kernel=acc._kernel(audit.entries))
            row[tool] = res
        rows[name] = row
    Path(result_path).write_text(json.dumps(rows))


# ------------------------------------------------------------------ parent


def _child(args: list[str], env: dict, what: str) -> None:
    _bench_accuracy()._child(args, env, what, script=__file__)


def _label(key: str) -> str:
    if key.startswith("sqnr_db:"):
        return f"SQNR dB ({key.split(':', 1)[1]})"
    return {"timestep_agreement": "timestep argmax agreement", "string_agreement": "decoded-string agreement",
            "top1_agreement": "top-1 agreement"}[key]


def _fmt(v: float) -> str:
    return f"{v:.2f}" if v > 1.0 or v == float("inf") else f"{v:.4f}"


def table(rows: dict, quant: dict, models: list[str]) -> tuple[list[str], list[dict]]:
    """Markdown lines and JSON rows: one per model and metric, then INT8 layers."""
    lines = ["| model | metric | NNCF | ovq | ovq ≥ NNCF? | quantize time ovq/NNCF |", "|---|---|---|---|---|---|"]
    out = []
    for name in models:
        row = rows[name]
        n, o = row.get("nncf", {}), row.get("ovq", {})
        qn, qo = quant[(name, "nncf")], quant[(name, "ovq")]
        ratio = f"{qo['seconds'] / qn['seconds']:.2f}" if "seconds" in qn and "seconds" in qo else "-"
        errors = {t: quant[(name, t)].get("error") or row.get(t, {}).get("error") for t in TOOLS}
        keys = [k for k in (n if "error" not in n and n else o) if k not in ("int8", "layers", "kernel")]
        first = True
        for key in keys:
            nv, ov_ = n.get(key), o.get(key)
            better = "-" if nv is None or ov_ is None else \
                ("yes" if ov_ >= nv - (SQNR_TIE_DB if key.startswith("sqnr") else 0) else "**no**")
            lines.append(f"| {name if first else ''} | {_label(key)} | {_fmt(nv) if nv is not None else 'error'} | "
                         f"{_fmt(ov_) if ov_ is not None else 'error'} | {better} | {ratio if first else ''} |")
            out.append({"model": name, "metric": key, "nncf": nv, "ovq": ov_, "ovq_ge_nncf": better == "yes"})
            first = False
        cnt = {t: f"{row[t]['int8']}/{row[t]['layers']}" if t in row and "int8" in row[t] else "error"
               for t in TOOLS}
        lines.append(f"| {name if first else ''} | INT8 layers | {cnt['nncf']} | {cnt['ovq']} | "
                     f"{'yes' if cnt['nncf'] == cnt['ovq'] else 'differs'} | {ratio if first else ''} |")
        out.append({"model": name, "metric": "int8_layers", "nncf": cnt["nncf"], "ovq": cnt["ovq"],
                    "kernel_nncf": n.get("kernel"), "kernel_ovq": o.get("kernel"),
                    "time_ratio_ovq_nncf": None if ratio == "-" else float(ratio), "errors": errors})
        for t in TOOLS:
            if errors[t]:
                lines.append(f"| | {t} failed | {errors[t]} | | | |")
    return lines, out


def _option(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` as a keyword argument: VALUE as JSON if it parses, else the string."""
    key, _, value = text.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    ap.add_argument("--inputs", default="real", choices=["real", "noise"])
    ap.add_argument("--isa", default="AVX2", help="ONEDNN_MAX_CPU_ISA of the evaluation process")
    ap.add_argument("--ovq-option", action="append", default=[], metavar="KEY=VALUE",
                    help="extra ovq.quantize keyword argument, VALUE as JSON or a string (repeatable), "
                    "e.g. overflow_fix=enable or 'ignored_scope={\"types\": [\"LSTMSequence\"]}'")
    ap.add_argument("--save-dir", help="keep the models and evaluation samples here")
    ap.add_argument("--json", metavar="OUT", help="write every figure to this JSON file")
    ap.add_argument("--quantize-child", nargs=6, help=argparse.SUPPRESS)
    ap.add_argument("--evaluate-child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quantize_child:
        quantize_child(*args.quantize_child)
        return
    if args.evaluate_child:
        evaluate_child(*args.evaluate_child)
        return

    import nncf
    import openvino as ov

    import ovq

    acc = _bench_accuracy()
    cpu, flags = acc.cpu_info()
    isa = args.isa.upper()
    if isa not in acc.available_isas(flags):
        raise SystemExit(f"ISA {isa} is not available on this CPU ({cpu})")
    options = dict(_option(kv) for kv in args.ovq_option)
    env = dict(os.environ, OVQ_NO_PROGRESS="1", PYTHONWARNINGS="ignore")
    env.pop("ONEDNN_MAX_CPU_ISA", None)
    quant: dict = {}
    load = [os.getloadavg()]
    t_run = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ovq-zoobench-") as tmp:
        work = Path(args.save_dir) if args.save_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        spec: dict = {"inputs": args.inputs, "save_dir": args.save_dir, "models": {}}
        for i, name in enumerate(args.models):
            spec["models"][name] = {}
            stem = name.replace("/", "_")
            for tool in TOOLS if i % 2 == 0 else TOOLS[::-1]:  # alternate which tool goes first
                out, res = str(work / f"{stem}_{tool}.xml"), str(work / f"{stem}_{tool}.json")
                _child(["--quantize-child", tool, name, args.inputs, json.dumps(options), out, res], env,
                       f"{tool} on {name}")
                quant[(name, tool)] = json.loads(Path(res).read_text())
                if "error" not in quant[(name, tool)]:
                    spec["models"][name][tool] = out
                print(f"quantized {name} with {tool}: {quant[(name, tool)].get('seconds', 'error')}", file=sys.stderr)
                load.append(os.getloadavg())
        spec_path = work / "spec.json"
        spec_path.write_text(json.dumps(spec))
        res = str(work / "eval.json")
        _child(["--evaluate-child", str(spec_path), res], dict(env, ONEDNN_MAX_CPU_ISA=isa), f"evaluation under {isa}")
        rows = json.loads(Path(res).read_text())
    run_seconds = time.perf_counter() - t_run
    load.append(os.getloadavg())

    lines, out = table(rows, quant, args.models)
    one_min = [x[0] for x in load]
    print(f"CPU: {cpu}, {os.cpu_count()} cores; evaluation ISA {isa}; OpenVINO {ov.__version__}, "
          f"NNCF {nncf.__version__}, ovq {ovq.__version__}; inputs: {args.inputs}"
          + (f"; ovq options {options}" if options else ""))
    print(f"load average (1 min) during the run: {min(one_min):.1f}-{max(one_min):.1f}; "
          f"run {run_seconds / 60:.1f} min")
    print()
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "cpu": cpu, "isa": isa, "openvino": ov.__version__, "nncf": nncf.__version__, "ovq": ovq.__version__,
            "inputs": args.inputs, "ovq_options": options, "load_average_1min": [min(one_min), max(one_min)],
            "run_seconds": run_seconds, "quantize": [quant[(m, t)] for m in args.models for t in TOOLS],
            "evaluation": rows, "rows": out}, indent=1))


if __name__ == "__main__":
    main()
