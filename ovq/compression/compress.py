"""``ovq.compress_weights``: data-free INT8/INT4 weight-only compression.

Phases, each its own module: options (:mod:`ovq.compression.options`, NNCF 3.4's
defaults and checks), layer selection and precisions (:mod:`ovq.compression.layers`),
the kernels (:meth:`ovq.kernels.api.Kernels.compress_groups`), and the graph edit
(:mod:`ovq.compression.decompress`). Weights are read in row blocks of
:data:`BLOCK_BYTES` straight from the ``.bin`` (``pread`` into one buffer) and their
integer levels appended to a scratch file (:mod:`ovq.compression.spill`) block by block,
so the process holds one block, plus one row of scales per weight, never a copy of the
model or of a whole weight. Activations are untouched.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from ovq.compression.decompress import insert_decompression, levels_shape
from ovq.compression.layers import LayerPlan, WeightSite, find_sites, select_precisions
from ovq.compression.options import CompressionOptions, resolve_options
from ovq.compression.spill import SpillFile
from ovq.errors import OptionError
from ovq.ir import Graph, read_model
from ovq.ir.element_types import ELEMENT_TYPES
from ovq.kernels._layout import bfloat16

log = logging.getLogger("ovq.compression")

@dataclass(frozen=True)
class CompressedLayer:
    """What happened to one weight.

    Attributes:
        op_name / op_type: The first op reading the weight.
        weight: The weight Const's name.
        shape: The weight's shape.
        precision: ``int4_asym g128``-style label, or ``float`` (left as is).
        reason: ``primary``, ``backup: <why>`` or ``float: <why>``.
        bytes_before / bytes_after: Bytes of the weight before and of its integer
            weights, scales and zero points after.
    """

    op_name: str
    op_type: str
    weight: str
    shape: tuple[int, ...]
    precision: str
    reason: str
    bytes_before: int
    bytes_after: int


@dataclass
class CompressionReport:
    """The outcome of :func:`compress_weights` (``return_report=True``)."""

    options: CompressionOptions
    layers: list[CompressedLayer] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    already_compressed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    kernel_seconds: float = 0.0
    """Time inside the compression kernels (float weights in, levels/scales out)."""

    @property
    def bytes_before(self) -> int:
        return sum(lay.bytes_before for lay in self.layers)

    @property
    def bytes_after(self) -> int:
        return sum(lay.bytes_after for lay in self.layers)

    def counts(self) -> dict[str, int]:
        """Number of weights per precision label."""
        out: dict[str, int] = {}
        for lay in self.layers:
            out[lay.precision] = out.get(lay.precision, 0) + 1
        return out

    def elements(self) -> dict[str, int]:
        """Weight elements per precision label."""
        out: dict[str, int] = {}
        for lay in self.layers:
            out[lay.precision] = out.get(lay.precision, 0) + int(np.prod(lay.shape, dtype=np.int64))
        return out

    def summary(self) -> str:
        """A few lines: weights and share of elements per precision, bytes, time."""
        total = max(sum(self.elements().values()), 1)
        lines = [f"{'precision':<18} {'weights':>7} {'% of elements':>14}"]
        for label, n in sorted(self.counts().items()):
            lines.append(f"{label:<18} {n:>7} {100.0 * self.elements()[label] / total:>13.1f}%")
        if self.ignored:
            lines.append(f"ignored (ignored_scope): {len(self.ignored)}")
        if self.already_compressed:
            lines.append(f"already compressed, left as is: {len(self.already_compressed)}")
        lines.append(f"weights {self.bytes_before / 2**20:.1f} MiB -> {self.bytes_after / 2**20:.1f} MiB "
                     f"in {self.seconds:.2f} s")
        return "\n".join(lines)


BLOCK_BYTES = 8 << 20
"""Float weight bytes read per kernel call: weights are compressed in row blocks."""


def _dtype(site: WeightSite) -> np.dtype:
    return np.dtype(bfloat16()) if site.element_type == "bf16" else ELEMENT_TYPES[site.element_type].numpy


def _row_blocks(graph: Graph, site: WeightSite) -> Iterator[np.ndarray]:
    """The weight as ``(rows, C)`` float blocks of about :data:`BLOCK_BYTES`, in row order.

    Weights still in their ``.bin`` are read with ``pread`` into one reused buffer (nothing
    of the file is mapped); a MatMul weight stored ``[in, out]`` is read through the
    mapping, block by block of its transpose, and its pages dropped afterwards.
    """
    data = graph.const_data(site.const)
    r, c = site.matrix
    dt = _dtype(site)
    step = max(1, BLOCK_BYTES // max(1, c * dt.itemsize))
    if site.transposed or not data.in_file:
        w = data.value()
        if site.element_type == "bf16":
            w = w.view(dt)
        w = w.T if site.transposed else w.reshape(r, c)
        for r0 in range(0, r, step):
            yield np.ascontiguousarray(w[r0 : r0 + step])
        if data.in_file:
            data.bin.drop_pages()
        return
    row_bytes = c * dt.itemsize
    buf = np.empty(min(step, r) * row_bytes, np.uint8)
    for r0 in range(0, r, step):
        n = min(step, r - r0)
        view = memoryview(buf)[: n * row_bytes]
        if data.bin.pread_into(view, data.offset + r0 * row_bytes) != len(view):
            raise OptionError(f"{data.bin.path}: short read of weight {site.name!r} (file changed?)")
        yield buf[: n * row_bytes].view(dt).reshape(n, c)


def _sensitivity(graph: Graph, kernels) -> Callable[[WeightSite], float]:
    eps = float(np.finfo(np.float32).eps)

    def score(site: WeightSite) -> float:
        worst = max(float(np.max(kernels.int8_asym_error(block, name=site.name)))
                    for block in _row_blocks(graph, site))
        return 1.0 / (worst + eps)

    return score


def _compress_one(graph: Graph, plan: LayerPlan, spill: SpillFile, kernels,
                  report: CompressionReport) -> CompressedLayer:
    site, p = plan.site, plan.precision
    before = graph.const_data(site.const).size
    if p is None:
        return CompressedLayer(site.op_name, site.op_type, site.name, site.shape, "float", plan.reason, before, before)
    start = spill.size
    scales, zps = [], []
    odd4 = p.bits == 4 and site.matrix[1] % 2 == 1  # rows do not end on a byte: pack the whole weight
    pending = []
    for block in _row_blocks(graph, site):
        t0 = time.perf_counter()
        q, scale, zp = kernels.compress_groups(block, p.bits, sym=p.sym, group_size=p.group_size,
                                               pack=not odd4, name=site.name)
        report.kernel_seconds += time.perf_counter() - t0
        if odd4:
            pending.append(q)
        else:
            spill.write(np.ascontiguousarray(q).view(np.uint8).reshape(-1))
        scales.append(scale)
        if zp is not None:
            zps.append(zp)
    if odd4:
        spill.write(kernels.pack_nibbles(np.concatenate(pending)))
    levels = spill.const(start, p.element_type, tuple(levels_shape(site, p)))
    scale = np.concatenate(scales)
    zp = np.concatenate(zps) if zps else None
    insert_decompression(graph, site, p, levels, scale, zp)
    after = levels.size + scale.size * 2 + (0 if zp is None else ELEMENT_TYPES[f"u{p.bits}"].nbytes(zp.shape))
    return CompressedLayer(site.op_name, site.op_type, site.name, site.shape, p.label, plan.reason, before, after)


def _progress(enabled: bool | None, total: int):
    from tqdm.auto import tqdm

    disable = (not sys.stderr.isatty() or os.environ.get("OVQ_NO_PROGRESS")) if enabled is None else not enabled
    return tqdm(total=total, desc="compressing weights", unit="weight", disable=bool(disable), leave=False)


def compress_graph(graph: Graph, opts: CompressionOptions, *, ignored_scope: Any = None, strict: bool = False,
                   progress: bool | None = None, spill_dir: str | os.PathLike[str] | None = None,
                   backend: str | None = None) -> CompressionReport:
    """Compress ``graph``'s weights in place with resolved options; return the report.

    Raises:
        OptionError: a group size that does not fit a layer (fallback ERROR), an f64 weight.
        IgnoredScopeError: ``strict`` and an ignored-scope entry matches nothing.
    """
    from ovq.kernels import get_kernels
    from ovq.quantization.ignored_scope import as_ignored_scope

    t0 = time.perf_counter()
    kernels = get_kernels(backend)
    scope = as_ignored_scope(ignored_scope)
    ignored = scope.resolve(graph, strict=strict) if not scope.is_empty() else set()
    ignored_names = {graph.op(n).name for n in ignored if graph.op(n).type == "Const"}
    sites, sel, last_skipped = find_sites(graph, ignored, ignored_names)
    sel = select_precisions(graph, sites, sel, last_skipped, opts, _sensitivity(graph, kernels))
    report = CompressionReport(opts, ignored=sel.ignored, already_compressed=sel.already_compressed)
    if sel.already_compressed:
        log.warning("%d layer(s) already have compressed weights and are left as they are: %s",
                    len(sel.already_compressed), ", ".join(sel.already_compressed[:5])
                    + (" ..." if len(sel.already_compressed) > 5 else ""))
    spill = SpillFile(spill_dir)
    with _progress(progress, len(sel.plans)) as bar:
        for plan in sel.plans:
            report.layers.append(_compress_one(graph, plan, spill, kernels, report))
            bar.update(1)
    graph.drop_constant_pages()
    report.seconds = time.perf_counter() - t0
    log.info("weight compression:\n%s", report.summary())
    return report


def compress_weights(
    model: Any,
    *,
    mode: Any = None,
    ratio: float | None = None,
    group_size: int | None = None,
    ignored_scope: Any = None,
    all_layers: bool | None = None,
    dataset: Any = None,
    sensitivity_metric: Any = None,
    subset_size: int = 128,
    awq: bool | None = None,
    scale_estimation: bool | None = None,
    gptq: bool | None = None,
    lora_correction: bool | None = None,
    backup_mode: Any = None,
    compression_format: Any = None,
    advanced_parameters: Any = None,
    group_size_fallback_mode: Any = None,
    strict: bool = False,
    progress: bool | None = None,
    spill_dir: str | os.PathLike[str] | None = None,
    return_report: bool = False,
) -> Any:
    """Compress the weights of MatMul, Gather (embedding) and Convolution ops to 8 or 4 bits.

    ``nncf.compress_weights`` 3.4-compatible (data-free): same keywords, defaults and
    enum spellings (members of :class:`CompressWeightsMode`, :class:`BackupMode`, ... or
    their lowercase string values); the output uses OpenVINO's decompression subgraph,
    which the CPU plugin runs as FullyConnected with integer weights.

    Args:
        model: An ``openvino.Model`` (a new Model is returned; the input is untouched),
            an :class:`ovq.Graph` (a new Graph) or a model path (a Graph).
        mode: ``int8_asym`` (default), ``int8_sym``, ``int4_sym`` or ``int4_asym``.
        ratio: Share (by elements) of the ratio-defining weights in the 4-bit mode; the
            weights with the lowest score 1 / (max row MSE of INT8_ASYM) go first,
            as NNCF's data-free ranking. Default 1.
        group_size: Weights per scale along the input channels (4-bit default 128; -1
            per channel).
        ignored_scope: An :class:`ovq.IgnoredScope` or dict; matched ops (or weight
            Consts) stay float.
        all_layers: Also put embeddings and the last MatMul in the 4-bit mode.
        dataset, sensitivity_metric (other than ``weight_quantization_error``), awq,
            scale_estimation, gptq, lora_correction: data-aware options, not supported
            yet (:class:`~ovq.errors.OptionError`).
        backup_mode: Precision of the other weights: ``int8_asym`` (default),
            ``int8_sym`` or ``none`` (float).
        compression_format, advanced_parameters, subset_size: accepted for
            compatibility; only the default decompression format exists.
        group_size_fallback_mode: ``error`` (default), ``ignore`` or ``adjust`` for
            weights whose input channels ``group_size`` does not divide.
        strict: An ignored-scope entry that matches nothing is an error (else a warning).
        progress: Progress bar (``None``: on a terminal only).
        spill_dir: Folder of the scratch file holding the integer weights until they
            are written (default: the system temporary folder).
        return_report: Return ``(model, CompressionReport)``.

    Raises:
        OptionError: a bad or unsupported option, a group size that does not fit a
            layer; the model is not changed.
    """
    fmt = getattr(compression_format, "value", compression_format)
    if fmt not in (None, "dq", "dequantize"):
        raise OptionError(f"compression_format={compression_format!r} is not supported; ovq writes the "
                          "decompression format (CompressionFormat.DQ, 'dequantize') only")
    opts = resolve_options(mode=mode, ratio=ratio, group_size=group_size, all_layers=all_layers,
                           backup_mode=backup_mode, sensitivity_metric=sensitivity_metric, dataset=dataset,
                           awq=awq, scale_estimation=scale_estimation, gptq=gptq, lora_correction=lora_correction,
                           group_size_fallback_mode=group_size_fallback_mode)
    is_ov = type(model).__module__.startswith("openvino")
    graph = read_model(model)
    if isinstance(model, Graph):
        graph = graph.copy()
    report = compress_graph(graph, opts, ignored_scope=ignored_scope, strict=strict, progress=progress,
                            spill_dir=spill_dir)
    out = graph.to_ov() if is_ov else graph
    return (out, report) if return_report else out
