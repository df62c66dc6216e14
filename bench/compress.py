"""ovq.compress_weights vs nncf.compress_weights: time, peak memory, same bits, output error.

Usage: python bench/compress.py [--repeats N] [--modes int8_asym,int4_sym,int4_asym] [MODEL ...]
       python bench/compress.py --data-aware [--samples N] [MODEL ...]
(default models: minilm llama_tiny qwen2_tiny llama_1g; nncf==3.4.0 must be installed in
this environment: it is a bench dependency only, never imported by ovq)

``--data-aware`` runs the configurations of :data:`CONFIGS` instead of the modes: INT4_ASYM
g128 with ratio 0.8 (data-free, then ranked by MAX_ACTIVATION_VARIANCE on data), AWQ, scale
estimation, and all of them together, each tool given the same options and the same
calibration samples (``--samples``, default 32: decoder LMs, batch-1 random token ids of
seeds 100, 101, ...; MiniLM, the first sentences of its 71, one per sample), an
``nncf.Dataset`` for NNCF and the list itself for ovq.

Each tool runs in a **fresh process** per model, mode and repeat (alternating order),
doing what a user does: read the IR, compress with the mode's defaults (4-bit: group
128, ratio 1, INT8_ASYM backup), save the IR (``ovq.save_model`` /
``openvino.save_model(compress_to_fp16=False)``). Wall time covers read + compress +
save; peak RSS growth is VmHWM (reset through ``/proc/self/clear_refs`` just before
reading) minus the RSS before reading (after imports). The ovq process also reports the
time inside its kernels and the float weight bytes they read, as GB/s against the
machine's copy bandwidth (``numpy.copyto`` of 256 MiB, counted read + write).

The parent then compares the two outputs: **same bits** = share of the compressed
constants (levels, scales, zero points, by name) that are byte-identical; and the output
error of each against the FP32 model with the f32 hint (MiniLM: mean and min cosine of
the 71 sentence embeddings; decoder LMs: logits SQNR on random token ids).
Times and memory are reported as medians and as ovq / NNCF ratios (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from memory import peak_mb, reset_peak, rss_mb  # bench/memory.py: this script's folder is on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

DEFAULT = ["minilm", "llama_tiny", "qwen2_tiny", "llama_1g"]
MODES = ["int8_asym", "int4_sym", "int4_asym"]
F32 = {"INFERENCE_PRECISION_HINT": "f32"}
CONFIGS = {  # name -> (compress_weights options, with data)
    "int4_asym r0.8": (dict(mode="int4_asym", ratio=0.8), False),
    "int4_asym r0.8 data": (dict(mode="int4_asym", ratio=0.8), True),
    "int4_asym awq": (dict(mode="int4_asym", awq=True), True),
    "int4_asym se": (dict(mode="int4_asym", scale_estimation=True), True),
    "int4_asym r0.8 awq+se": (dict(mode="int4_asym", ratio=0.8, awq=True, scale_estimation=True), True),
}


def calibration(name: str, samples: int) -> list[dict[str, np.ndarray]]:
    """The samples both tools get: batch-1 dicts of the model's inputs."""
    from ovq_testing.assets import lm_inputs, minilm_inputs

    if name == "minilm":
        x = minilm_inputs()
        return [{k: v[i : i + 1] for k, v in x.items()} for i in range(min(samples, len(x["input_ids"])))]
    return [lm_inputs(name, batch=1, seed=100 + i) for i in range(samples)]


def _options(mode: str) -> tuple[dict, bool]:
    return CONFIGS.get(mode, (dict(mode=mode), False))


def child(tool: str, name: str, mode: str, out: str, samples: int = 32) -> dict:
    from ovq_testing.assets import asset_path

    xml = asset_path(name)
    kw, with_data = _options(mode)
    data = calibration(name, samples) if with_data else None
    if tool == "ovq":
        import ovq
        from ovq.compression import compress_graph
        from ovq.compression.options import resolve_options

        ovq.kernels.get_kernels().compress_groups(np.ones((2, 256), np.float32), 4, sym=True)  # load the extension
        opts = resolve_options(mode=kw["mode"], ratio=kw.get("ratio"), group_size=None, all_layers=None,
                               backup_mode=None, sensitivity_metric=None, dataset=data, awq=kw.get("awq"),
                               scale_estimation=kw.get("scale_estimation"), gptq=None, lora_correction=None,
                               group_size_fallback_mode=None)
        rss0 = rss_mb()
        reset_peak()
        t0 = time.perf_counter()
        graph = ovq.read_model(xml)
        report = compress_graph(graph, opts, progress=False, spill_dir=str(Path(out).parent), dataset=data)
        ovq.save_model(graph, out)
        seconds = time.perf_counter() - t0
        read = sum(lay.bytes_before for lay in report.layers)
        return {"seconds": seconds, "rss_growth_mb": peak_mb() - rss0, "kernel_seconds": report.kernel_seconds,
                "weight_bytes": read, "counts": report.counts(), "statistics_seconds": report.statistics_seconds}
    import logging

    import nncf
    import openvino as ov

    logging.getLogger("nncf").setLevel(logging.ERROR)
    core = ov.Core()
    rss0 = rss_mb()
    reset_peak()
    t0 = time.perf_counter()
    model = core.read_model(xml)
    extra = {k: v for k, v in kw.items() if k != "mode"}
    if data is not None:
        extra["dataset"] = nncf.Dataset(data)
        extra["subset_size"] = samples
    model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode(kw["mode"]), **extra)
    ov.save_model(model, out, compress_to_fp16=False)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "rss_growth_mb": peak_mb() - rss0}


def copy_bandwidth() -> float:
    """GB/s of numpy.copyto on 256 MiB (bytes read + written), best of 5."""
    a = np.ones(64 << 20, np.float32)
    b = np.empty_like(a)
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        np.copyto(b, a)
        best = max(best, 2 * a.nbytes / (time.perf_counter() - t) / 1e9)
    return best


def _compressed_consts(xml: str) -> dict[str, bytes]:
    import openvino as ov

    out = {}
    for op in ov.Core().read_model(xml).get_ordered_ops():
        if op.get_type_name() == "Constant" and op.get_element_type().get_type_name() in ("u8", "i8", "u4", "i4"):
            name = op.get_friendly_name()
            out[name] = op.get_data().tobytes()
        elif op.get_type_name() == "Constant" and op.get_friendly_name().endswith("/scale"):
            out[op.get_friendly_name()] = op.get_data().tobytes()
    return out


def same_bits(a: str, b: str) -> tuple[int, int]:
    """(identical, total) compressed constants by name (NNCF's names are the total)."""
    ca, cb = _compressed_consts(a), _compressed_consts(b)
    return sum(1 for k, v in cb.items() if ca.get(k) == v), len(cb)


def output_error(name: str, fp_xml: Path, xmls: dict[str, str]) -> dict[str, str]:
    import openvino as ov

    from ovq_testing.assets import lm_inputs, mean_pool_normalize, minilm_inputs

    core = ov.Core()
    if name == "minilm":
        x = minilm_inputs()
        ref = mean_pool_normalize(core.compile_model(fp_xml, "CPU", F32)(x)[0], x["attention_mask"])
        out = {}
        for tool, xml in xmls.items():
            y = mean_pool_normalize(core.compile_model(xml, "CPU", F32)(x)[0], x["attention_mask"])
            cos = (ref * y).sum(1)
            out[tool] = f"cos {cos.mean():.4f}/{cos.min():.4f}"
        return out
    x = lm_inputs(name)
    ref = core.compile_model(fp_xml, "CPU", F32)(x)[0].astype(np.float64)
    out = {}
    for tool, xml in xmls.items():
        y = core.compile_model(xml, "CPU", F32)(x)[0].astype(np.float64)
        out[tool] = f"SQNR {10 * np.log10((ref ** 2).sum() / ((y - ref) ** 2).sum()):.2f} dB"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=DEFAULT)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--data-aware", action="store_true", help="run the data-aware configurations (CONFIGS)")
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--out", default="/tmp/ovq-bench-compress")
    ap.add_argument("--child", nargs=4, metavar=("TOOL", "MODEL", "MODE", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, samples=args.samples)))
        return
    modes = list(CONFIGS) if args.data_aware else args.modes.split(",")
    from ovq_testing.assets import asset_path

    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    bw = copy_bandwidth()
    with open("/proc/cpuinfo") as f:
        flags = next(line for line in f if line.startswith("flags")).split()
    isa = ",".join(f for f in ("avx2", "avx512f", "avx512_vnni", "amx_tile") if f in flags)
    print(f"copy bandwidth {bw:.1f} GB/s (read + write); ISA {isa}; load {os.getloadavg()[0]:.1f}")
    env = {**os.environ, "OVQ_NO_PROGRESS": "1"}
    rows = []
    for name in args.models:
        asset_path(name)  # build before timing
        for mode in modes:
            runs: dict[str, list[dict]] = {"ovq": [], "nncf": []}
            outs = {}
            for rep in range(args.repeats):
                for tool in (("ovq", "nncf") if rep % 2 == 0 else ("nncf", "ovq")):
                    out = work / f"{name}-{mode.replace(' ', '_')}-{tool}-{rep}.xml"
                    for p in (out, out.with_suffix(".bin")):
                        p.unlink(missing_ok=True)
                    proc = subprocess.run([sys.executable, __file__, "--child", tool, name, mode, str(out),
                                           "--samples", str(args.samples)], env=env,
                                          capture_output=True, text=True, check=False)
                    if proc.returncode:
                        sys.exit(f"{tool} {name} {mode} failed:\n{proc.stderr[-3000:]}")
                    runs[tool].append(json.loads(proc.stdout.strip().splitlines()[-1]))
                    outs[tool] = str(out)
            med = {t: {k: float(np.median([r[k] for r in v])) for k in ("seconds", "rss_growth_mb")}
                   for t, v in runs.items()}
            o = runs["ovq"][-1]
            kernel_gbs = o["weight_bytes"] / max(o["kernel_seconds"], 1e-9) / 1e9
            same, total = same_bits(outs["ovq"], outs["nncf"])
            err = output_error(name, asset_path(name), outs)
            rows.append((name, mode, med, kernel_gbs, same, total, err, load := os.getloadavg()[0]))
            print(f"{name:<11} {mode:<21} time {med['ovq']['seconds']:6.2f}/{med['nncf']['seconds']:<6.2f} s "
                  f"({med['ovq']['seconds'] / med['nncf']['seconds']:.2f}x)  RSS growth "
                  f"{med['ovq']['rss_growth_mb']:6.0f}/{med['nncf']['rss_growth_mb']:<6.0f} MiB "
                  f"({med['ovq']['rss_growth_mb'] / max(med['nncf']['rss_growth_mb'], 1):.2f}x)  kernels "
                  f"{kernel_gbs:.2f} GB/s ({100 * kernel_gbs / bw:.0f}% of copy bw)  same bits {same}/{total}  "
                  f"ovq {err['ovq']}, nncf {err['nncf']}  load {load:.1f}", flush=True)
            for p in work.glob(f"{name}-{mode.replace(' ', '_')}-*"):
                p.unlink()


if __name__ == "__main__":
    main()
