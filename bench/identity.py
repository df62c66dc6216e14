"""Bit-identity fingerprints of ``ovq.quantize`` and ``ovq.place_fake_quantize`` results.

Runs a fixed matrix of cases (options x models), saves each result with
``ovq.save_model`` and records, per case:

* the SHA-256 of the saved ``.xml`` and ``.bin``;
* the counts of the :class:`ovq.QuantizeReport` (``return_report=True``): activation and
  weight FQs, quantized ops, ops left in float, smoothed MatMuls, bias-corrected and
  bias-skipped layers, compressed tensors, weight bytes before/after;
* the op counts by type of the saved model;
* every FakeQuantize's four range arrays (``input_low``, ``input_high``, ``output_low``,
  ``output_high``), read back from the saved IR by OpenVINO, with a digest over the sorted
  names and arrays, so a difference names the FQs that moved and by how much;
* a digest of every Constant, so a ``.bin`` difference in a compressed model names the
  weights that changed.

Inputs are fingerprinted as well (model files, calibration samples) together with the
environment (OpenVINO, numpy, kernels backend): a comparison across different inputs
reports them first.

Models and calibration data are the bench's (``bench/quantize.py``: ``calibration``,
assets from :mod:`ovq_testing.assets` (tests/ovq_testing)), cut to the first :data:`SAMPLES` samples with
``subset_size`` equal to that count (the bench's own path, no subset draw). A model
whose asset is unavailable is skipped with a line saying why. :mod:`ovq_testing.assets` (tests/ovq_testing)
checks for the packages that build an asset before it looks in the cache, so the venv
needs them even when the cache is full: ``OVQ_SKIP_ASSET_BUILD=1 .ci/install-assets.sh
.venv/bin/python`` installs them without building anything.

The fingerprints do not depend on the run: separate processes, the matrix run whole or
one model at a time, and one CPU (``taskset -c 0``: one OpenVINO stream) or two (two
streams) give the same hashes for every case; the ``numpy`` kernels give the ``native``
ones' for the cases that use them most (``default``, ``range_quantile``, ``bias_full``,
``transformer_search``). The full matrix takes 4-5 minutes on a shared 2-core machine.

Run with the venv whose ovq is under test, from a folder other than the repository root
(there plain ``python`` would import the source ``ovq/`` without its native extension)::

    cd /tmp && /work/wt-identity/.venv/bin/python /work/wt-identity/bench/identity.py \\
        --save /work/identity-baseline.json
    cd /tmp && /work/wt-identity/.venv/bin/python /work/wt-identity/bench/identity.py \\
        --compare /work/identity-baseline.json

``--compare`` runs the matrix on the installed ovq, prints every case that differs and
what differs in it, and exits 1 on any difference (a case on one side only is one), 0
when identical. ``--save`` and ``--compare`` may be given together (run once, save and
compare). ``--models digits,minilm`` and ``--cases default,target_GNA`` run a part of
the matrix; a compare then covers only that part. ``--list`` prints the matrix.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import os
import platform
import sys
import tempfile
import time
import warnings
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# The test assets live with the tests (tests/ovq_testing), not in the installed ovq.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

#: Fingerprint file format; bumped when the JSON layout changes.
FORMAT = 1

#: Models of the matrix, in run order.
MODELS = ("digits", "resnet_like", "efficientnet_lite0", "minilm")

#: Calibration samples per model: the first N of the bench's calibration list.
SAMPLES = {"digits": 64, "resnet_like": 32, "efficientnet_lite0": 32, "minilm": 36}

#: How many differing FQs / constants a compare names per case.
SHOWN = 5


@dataclass(frozen=True)
class Case:
    """One call of the matrix.

    Attributes:
        name: Case name, unique; the JSON key is ``<model>/<name>``.
        call: ``"quantize"`` (``ovq.quantize``) or ``"place"`` (``ovq.place_fake_quantize``).
        options: Keyword arguments of the call, besides the model and the data.
        models: The models the case runs on (None: all).
    """

    name: str
    call: str
    options: dict[str, Any] = field(default_factory=dict)
    models: tuple[str, ...] | None = None

    def runs_on(self, model: str) -> bool:
        """Whether the case belongs to ``model``'s row of the matrix."""
        return self.models is None or model in self.models


CASES: tuple[Case, ...] = (
    Case("default", "quantize"),
    Case("preset_mixed", "quantize", {"preset": "mixed"}),
    Case("range_minmax", "quantize", {"activations_range": "minmax"}),
    Case("range_quantile", "quantize", {"activations_range": "quantile"}),
    Case("bias_full", "quantize", {"fast_bias_correction": False}),
    Case("bias_none", "quantize", {"fast_bias_correction": None}),
    Case("uncompressed", "quantize", {"compress_weights": False}),
    Case("overflow_enable", "quantize", {"overflow_fix": "enable"}),
    Case("overflow_disable", "quantize", {"overflow_fix": "disable"}),
    Case("target_CPU", "quantize", {"target_device": "CPU"}),
    Case("target_GPU", "quantize", {"target_device": "GPU"}),
    Case("target_NPU", "quantize", {"target_device": "NPU"}),
    Case("target_GNA", "quantize", {"target_device": "GNA"}),
    Case("transformer", "quantize", {"model_type": "transformer"}, ("minilm",)),
    Case("transformer_search", "quantize", {"model_type": "transformer", "smooth_quant": "search"}, ("minilm",)),
    Case("place_CPU", "place", {"target": "CPU"}),
    Case("place_ANY", "place", {"target": "ANY"}),
)


# --------------------------------------------------------------------------------------
# Digests


def _sha256_file(path: Path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sha256_arrays(arrays: Sequence[np.ndarray]) -> str:
    """SHA-256 over the dtype, shape and bytes of each array, in order."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _sample_arrays(sample: Any) -> list[np.ndarray]:
    """The arrays of one calibration sample (a dict's in key order)."""
    if isinstance(sample, dict):
        return [np.asarray(sample[k]) for k in sorted(sample)]
    return [np.asarray(sample)]


def _encode(a: np.ndarray) -> dict[str, Any]:
    """A JSON-able exact copy of an array: dtype, shape, base64 of its zlib'd bytes."""
    a = np.ascontiguousarray(a)
    return {"dtype": a.dtype.str, "shape": list(a.shape),
            "data": base64.b64encode(zlib.compress(a.tobytes(), 9)).decode("ascii")}


def _decode(d: dict[str, Any]) -> np.ndarray:
    """The array :func:`_encode` stored."""
    raw = zlib.decompress(base64.b64decode(d["data"]))
    return np.frombuffer(raw, dtype=np.dtype(d["dtype"])).reshape(d["shape"])


def _encode_ranges(arrays: Sequence[np.ndarray]) -> list[Any]:
    """:func:`_encode` of each array, or the index of an equal earlier one (an FQ's output
    range usually repeats its input range: this halves the file)."""
    out: list[Any] = []
    for k, a in enumerate(arrays):
        same = next((j for j in range(k) if (arrays[j].dtype, arrays[j].shape) == (a.dtype, a.shape)
                     and arrays[j].tobytes() == a.tobytes()), None)
        out.append(same if same is not None else _encode(a))
    return out


def _decode_ranges(encoded: Sequence[Any]) -> list[np.ndarray]:
    """The arrays :func:`_encode_ranges` stored."""
    out: list[np.ndarray] = []
    for d in encoded:
        out.append(out[d] if isinstance(d, int) else _decode(d))
    return out


def _unique_names(ops: Sequence[Any]) -> list[str]:
    """Friendly names of ``ops``, a repeated one suffixed ``#k`` (k-th occurrence, k >= 1)."""
    seen: Counter[str] = Counter()
    names = []
    for op in ops:
        name = op.get_friendly_name()
        names.append(name if not seen[name] else f"{name}#{seen[name]}")
        seen[name] += 1
    return names


def _fq_ranges(model: Any) -> dict[str, Any]:
    """Every FakeQuantize's range arrays, by name, plus a digest over all of them.

    An FQ whose range input is not a Constant records the producer's type instead of
    values (ovq writes Constants, so this marks a structural change).
    """
    fqs = [op for op in model.get_ordered_ops() if op.get_type_name() == "FakeQuantize"]
    per_fq: dict[str, Any] = {}
    for name, op in zip(_unique_names(fqs), fqs, strict=True):
        arrays, sources = [], []
        for i in range(1, 5):
            src = op.input_value(i).get_node()
            if src.get_type_name() == "Constant":
                arrays.append(np.asarray(src.get_data()))
            else:
                sources.append(f"{i}:{src.get_type_name()}")
        per_fq[name] = {
            "levels": int(op.get_levels()),
            "digest": _sha256_arrays(arrays)[:16] + ("|" + ",".join(sources) if sources else ""),
            "ranges": _encode_ranges(arrays),
        }
    h = hashlib.sha256()
    for name in sorted(per_fq):
        h.update(f"{name}\0{per_fq[name]['levels']}\0{per_fq[name]['digest']}\0".encode())
    return {"digest": h.hexdigest(), "per_fq": per_fq}


def _constant_digests(model: Any) -> dict[str, str]:
    """Short digest of every Constant's element type, shape and data, by name."""
    consts = [op for op in model.get_ordered_ops() if op.get_type_name() == "Constant"]
    return {name: _sha256_arrays([np.asarray(op.get_data())])[:16]
            for name, op in zip(_unique_names(consts), consts, strict=True)}


def _report_counts(report: Any) -> dict[str, int]:
    """The counts of a :class:`ovq.QuantizeReport` (no timings, no request count: those
    depend on the machine)."""
    return {
        "samples": report.samples,
        "activation_fqs": report.activation_fqs,
        "weight_fqs": report.weight_fqs,
        "quantized_ops": report.quantized_ops,
        "skipped": len(report.skipped),
        "smoothed": report.smoothed,
        "bias_corrected": report.bias_corrected,
        "bias_skipped": len(report.bias_skipped),
        "compressed": report.compressed,
        "weight_bytes_before": report.weight_bytes_before,
        "weight_bytes_after": report.weight_bytes_after,
    }


# --------------------------------------------------------------------------------------
# Running the matrix


def _load(model: str) -> tuple[Path, list[Any]]:
    """The asset path of ``model`` and its first :data:`SAMPLES` calibration samples.

    Raises:
        AssetUnavailable: The asset cannot be built or found here.
    """
    from quantize import calibration  # bench/quantize.py: this script's folder is on sys.path

    from ovq_testing.assets import asset_path

    path = asset_path(model)
    return path, calibration(model)[: SAMPLES[model]]


def _input_fingerprint(path: Path, samples: Sequence[Any]) -> dict[str, Any]:
    """Digests of the model files and of the calibration samples."""
    h = hashlib.sha256()
    for sample in samples:
        h.update(_sha256_arrays(_sample_arrays(sample)).encode())
    return {"xml": _sha256_file(path), "bin": _sha256_file(path.with_suffix(".bin")),
            "samples": len(samples), "samples_digest": h.hexdigest()}


def _run_call(case: Case, path: Path, samples: list[Any]) -> tuple[Any, Any]:
    """Run ``case`` on a freshly read copy of the model: ``(result ov.Model, report or None)``."""
    import openvino as ov

    import ovq

    model = ov.Core().read_model(str(path))
    if case.call == "place":
        return ovq.place_fake_quantize(model, calibration_samples=samples, **case.options), None
    return ovq.quantize(model, samples, subset_size=len(samples), progress=False, return_report=True,
                        **case.options)


def run_case(case: Case, path: Path, samples: list[Any], tmp: Path) -> dict[str, Any]:
    """Run one case and fingerprint its saved result.

    An exception is recorded as the result (its type and message): a refactor must keep
    failures as they are too.
    """
    import openvino as ov

    import ovq

    try:
        result, report = _run_call(case, path, samples)
    except Exception as exc:  # the failure is the fingerprint
        return {"error": f"{type(exc).__name__}: {exc}"}
    # The .xml is hashed as written, without normalisation: it holds no timestamps,
    # paths or temporary names (op names come from the source model or from ovq's
    # placement, the net name from the source IR, and the rt_info only the OpenVINO
    # version, which the environment record also carries).
    xml = tmp / "model.xml"
    ovq.save_model(result, xml)
    saved = ov.Core().read_model(str(xml))
    entry: dict[str, Any] = {
        "xml": _sha256_file(xml),
        "bin": _sha256_file(xml.with_suffix(".bin")),
        "ops": dict(sorted(Counter(op.get_type_name() for op in saved.get_ops()).items())),
        "fq": _fq_ranges(saved),
        "constants": _constant_digests(saved),
    }
    if report is not None:
        entry["report"] = _report_counts(report)
    del saved, result
    for f in (xml, xml.with_suffix(".bin")):
        f.unlink()
    return entry


def _environment() -> dict[str, str]:
    """Versions that can change results without any ovq change."""
    import openvino as ov

    import ovq

    return {"openvino": ov.get_version(), "numpy": np.__version__, "python": platform.python_version(),
            "ovq_kernels": str(ovq.kernels_backend()), "machine": platform.machine()}


def fingerprint(models: Sequence[str], cases: Sequence[Case]) -> dict[str, Any]:
    """Run ``cases`` on ``models`` and return the fingerprint document."""
    from ovq_testing.assets import AssetUnavailable

    doc: dict[str, Any] = {"format": FORMAT, "environment": _environment(), "inputs": {}, "skipped": {},
                           "cases": {}, "seconds": {}}
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ovq-identity-") as tmp:
        for model in models:
            try:
                path, samples = _load(model)
            except AssetUnavailable as exc:
                print(f"skip {model}: asset unavailable: {exc}", flush=True)
                doc["skipped"][model] = str(exc)
                continue
            doc["inputs"][model] = _input_fingerprint(path, samples)
            for case in cases:
                if not case.runs_on(model):
                    continue
                key = f"{model}/{case.name}"
                t = time.perf_counter()
                doc["cases"][key] = entry = run_case(case, path, samples, Path(tmp))
                doc["seconds"][key] = round(time.perf_counter() - t, 2)
                status = entry["error"] if "error" in entry else f"bin {entry['bin'][:12]}"
                print(f"{key:<40} {doc['seconds'][key]:6.1f} s  {status}", flush=True)
            del samples
    doc["seconds"]["total"] = round(time.perf_counter() - t_all, 1)
    return doc


# --------------------------------------------------------------------------------------
# Comparing


def _fq_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Lines naming the first FQs whose ranges differ, with the max abs difference."""
    a, b = old["per_fq"], new["per_fq"]
    lines = []
    only_old, only_new = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_old:
        lines.append(f"{len(only_old)} FQ only in the saved file: {', '.join(only_old[:SHOWN])}")
    if only_new:
        lines.append(f"{len(only_new)} FQ only in this run: {', '.join(only_new[:SHOWN])}")
    moved = [n for n in sorted(set(a) & set(b)) if (a[n]["digest"], a[n]["levels"]) != (b[n]["digest"], b[n]["levels"])]
    if moved:
        shown = []
        for name in moved[:SHOWN]:
            shown.append(f"{name} ({_range_delta(a[name], b[name])})")
        more = f" and {len(moved) - SHOWN} more" if len(moved) > SHOWN else ""
        lines.append(f"{len(moved)} FQ ranges differ: {'; '.join(shown)}{more}")
    return lines


def _range_delta(a: dict[str, Any], b: dict[str, Any]) -> str:
    """How one FQ's ranges differ: levels, shapes, or the max abs difference of the values."""
    if a["levels"] != b["levels"]:
        return f"levels {a['levels']} -> {b['levels']}"
    ra, rb = _decode_ranges(a["ranges"]), _decode_ranges(b["ranges"])
    if len(ra) != len(rb) or any(x.shape != y.shape for x, y in zip(ra, rb, strict=False)):
        return f"range shapes {[x.shape for x in ra]} -> {[y.shape for y in rb]}"
    delta = max(float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)), initial=0.0))
                for x, y in zip(ra, rb, strict=True))
    return f"max |diff| {delta:.3g}" if delta else "equal values, other bytes (dtype, -0.0 or NaN) or range source"


def _dict_differences(what: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """One line listing the keys of ``old`` / ``new`` whose values differ."""
    changed = [f"{k} {old.get(k, '-')} -> {new.get(k, '-')}" for k in sorted(set(old) | set(new))
               if old.get(k) != new.get(k)]
    return [f"{what}: {', '.join(changed)}"] if changed else []


def case_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Lines describing how two fingerprints of one case differ (empty: identical)."""
    if "error" in old or "error" in new:
        return [] if old.get("error") == new.get("error") else \
            [f"error: {old.get('error', 'none')} -> {new.get('error', 'none')}"]
    lines = [f".{f} differs" for f in ("xml", "bin") if old[f] != new[f]]
    lines += _dict_differences("report", old.get("report", {}), new.get("report", {}))
    lines += _dict_differences("op counts", old["ops"], new["ops"])
    if old["fq"]["digest"] != new["fq"]["digest"]:
        lines += _fq_differences(old["fq"], new["fq"])
    ca, cb = old["constants"], new["constants"]
    changed = [n for n in sorted(set(ca) | set(cb)) if ca.get(n) != cb.get(n)]
    if changed:
        more = f" and {len(changed) - SHOWN} more" if len(changed) > SHOWN else ""
        lines.append(f"{len(changed)} constants differ or exist on one side only: "
                     f"{', '.join(changed[:SHOWN])}{more}")
    return lines


def compare(old: dict[str, Any], new: dict[str, Any], models: Sequence[str], cases: Sequence[Case]) -> int:
    """Print every difference between two fingerprint documents over ``models`` x ``cases``.

    Returns:
        The number of differing cases, input models and skip decisions.
    """
    names = {c.name for c in cases}
    in_scope = {k for k in set(old["cases"]) | set(new["cases"])
                if k.split("/", 1)[0] in models and k.split("/", 1)[1] in names}
    differences = 0
    for key in _changed_environment(old["environment"], new["environment"]):
        print(f"note: environment {key}")
    for model in models:
        if (model in old["skipped"]) != (model in new["skipped"]):
            side = "the saved file" if model in old["skipped"] else "this run"
            print(f"DIFF {model}: skipped in {side} only ({(old['skipped'] | new['skipped'])[model]})")
            differences += 1
        a, b = old["inputs"].get(model), new["inputs"].get(model)
        if a is not None and b is not None and a != b:
            print(f"DIFF {model}: the inputs differ ({', '.join(k for k in a if a[k] != b.get(k))}): "
                  "the comparison of its cases is not meaningful")
            differences += 1
    for key in sorted(in_scope):
        if key not in old["cases"] or key not in new["cases"]:
            print(f"DIFF {key}: only in {'the saved file' if key in old['cases'] else 'this run'}")
            differences += 1
            continue
        lines = case_differences(old["cases"][key], new["cases"][key])
        if lines:
            differences += 1
            print(f"DIFF {key}:")
            for line in lines:
                print(f"    {line}")
    print(f"{len(in_scope)} cases compared, {differences} differences")
    return differences


def _changed_environment(old: dict[str, str], new: dict[str, str]) -> Iterator[str]:
    """``"<key> <old> -> <new>"`` for each environment entry that differs."""
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            yield f"{key} {old.get(key)} -> {new.get(key)}"


# --------------------------------------------------------------------------------------
# Command line


def _selection(text: str | None, known: Sequence[str], what: str) -> list[str]:
    """The comma-separated names of ``text`` (all of ``known`` if None), validated."""
    if text is None:
        return list(known)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return names


def _quiet() -> None:
    """Keep the output to one line per case: ovq's and OpenVINO's warnings are expected here."""
    os.environ.setdefault("OVQ_NO_PROGRESS", "1")
    warnings.simplefilter("ignore")
    logging.getLogger("ovq").setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--save", type=Path, metavar="FILE.json", help="write this run's fingerprints")
    ap.add_argument("--compare", type=Path, metavar="FILE.json", help="compare this run with a saved file")
    ap.add_argument("--models", help=f"comma-separated subset of {','.join(MODELS)}")
    ap.add_argument("--cases", help="comma-separated subset of the case names (see --list)")
    ap.add_argument("--list", action="store_true", help="print the matrix and exit")
    args = ap.parse_args(argv)
    models = _selection(args.models, MODELS, "models")
    cases = [c for c in CASES if c.name in _selection(args.cases, [c.name for c in CASES], "cases")]
    if args.list:
        for model in models:
            print(f"{model} ({SAMPLES[model]} samples): {', '.join(c.name for c in cases if c.runs_on(model))}")
        return 0
    if args.save is None and args.compare is None:
        ap.error("give --save FILE.json, --compare FILE.json, or both")
    old = json.loads(args.compare.read_text()) if args.compare is not None else None
    if old is not None and old.get("format") != FORMAT:
        raise SystemExit(f"{args.compare}: format {old.get('format')}, this script writes {FORMAT}")
    _quiet()
    doc = fingerprint(models, cases)
    print(f"matrix ran in {doc['seconds']['total']:.1f} s")
    if args.save is not None:
        args.save.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        print(f"saved {len(doc['cases'])} cases to {args.save}")
    if old is not None:
        return 1 if compare(old, doc, models, cases) else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
