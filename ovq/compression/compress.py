"""``ovq.compress_weights``: INT8/INT4 weight-only compression, data-free or data-aware.

Phases, each its own module: options (:mod:`ovq.compression.options`, NNCF 3.4's
defaults and checks), with a dataset one statistics pass over the MatMul inputs
(:mod:`ovq.compression.activations`), layer selection and precisions
(:mod:`ovq.compression.layers`, ranked by :mod:`ovq.compression.sensitivity`), AWQ
(:mod:`ovq.compression.awq`), scale estimation (:mod:`ovq.compression.scale_estimation`),
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

from ovq.compression.activations import LayerActivations, collect_activations
from ovq.compression.awq import apply_awq, find_targets, weight_matrix
from ovq.compression.decompress import insert_decompression, levels_shape
from ovq.compression.layers import LayerPlan, WeightSite, find_sites, select_precisions
from ovq.compression.options import CompressionOptions, resolve_options
from ovq.compression.scale_estimation import EstimatedParams, estimate_scales
from ovq.compression.sensitivity import sensitivity
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
    statistics_seconds: float = 0.0
    """Time of the statistics pass over the dataset (0 without one)."""
    samples: int = 0
    """Calibration samples the statistics pass ran."""
    awq_layers: list[str] = field(default_factory=list)
    """MatMuls whose weight AWQ rescaled."""
    scale_estimated: list[str] = field(default_factory=list)
    """Weights whose scales scale estimation set."""

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
        if self.options.data_aware:
            lines.append(f"statistics: {self.samples} samples in {self.statistics_seconds:.2f} s; "
                         f"sensitivity {self.options.sensitivity_metric.value}")
        if self.options.awq:
            lines.append(f"AWQ ({'data-aware' if self.options.data_aware else 'data-free'}): "
                         f"{len(self.awq_layers)} MatMul(s) rescaled")
        if self.options.scale_estimation:
            lines.append(f"scale estimation: {len(self.scale_estimated)} weight(s)")
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


def _row_errors(graph: Graph, kernels) -> Callable[[WeightSite], np.ndarray]:
    """Per-row INT8_ASYM mean squared errors of a weight, read block by block."""

    def errors(site: WeightSite) -> np.ndarray:
        return np.concatenate([kernels.int8_asym_error(block, name=site.name) for block in _row_blocks(graph, site)])

    return errors


def _write_estimated(graph: Graph, site: WeightSite, p, est: EstimatedParams, spill: SpillFile, kernels) -> None:
    """Levels of ``site`` with scale-estimated scales (the whole weight at once)."""
    from ovq.kernels.reference import quantize_with

    w = weight_matrix(graph, site)
    zp = None if est.zero_point is None else est.zero_point.astype(np.float32)
    q = quantize_with(w, est.scale, zp, p.bits, p.sym).reshape(w.shape)
    q = q.astype(np.int8) if p.sym else q.astype(np.uint8)
    spill.write(kernels.pack_nibbles(q) if p.bits == 4 else q.view(np.uint8).reshape(-1))


def _compress_one(graph: Graph, plan: LayerPlan, spill: SpillFile, kernels,
                  report: CompressionReport, est: EstimatedParams | None = None) -> CompressedLayer:
    site, p = plan.site, plan.precision
    before = graph.const_data(site.const).size
    if p is None:
        return CompressedLayer(site.op_name, site.op_type, site.name, site.shape, "float", plan.reason, before, before)
    start = spill.size
    if est is not None:
        _write_estimated(graph, site, p, est, spill, kernels)
        levels = spill.const(start, p.element_type, tuple(levels_shape(site, p)))
        insert_decompression(graph, site, p, levels, est.scale, est.zero_point)
        zp = est.zero_point
        after = levels.size + est.scale.size * 2 + (0 if zp is None else ELEMENT_TYPES[f"u{p.bits}"].nbytes(zp.shape))
        return CompressedLayer(site.op_name, site.op_type, site.name, site.shape, p.label, plan.reason, before, after)
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


def _progress(enabled: bool | None, total: int, desc: str = "compressing weights"):
    from tqdm.auto import tqdm

    disable = (not sys.stderr.isatty() or os.environ.get("OVQ_NO_PROGRESS")) if enabled is None else not enabled
    return tqdm(total=total, desc=desc, unit="weight", disable=bool(disable), leave=False)


def compress_graph(graph: Graph, opts: CompressionOptions, *, ignored_scope: Any = None, strict: bool = False,
                   progress: bool | None = None, spill_dir: str | os.PathLike[str] | None = None,
                   backend: str | None = None, dataset: Any = None) -> CompressionReport:
    """Compress ``graph``'s weights in place with resolved options; return the report.

    With ``dataset`` (and options that need it), one statistics pass over its first
    ``opts.subset_size`` samples comes first; the graph is not modified until it is done.

    Raises:
        OptionError: a group size that does not fit a layer (fallback ERROR), an f64 weight.
        IgnoredScopeError: ``strict`` and an ignored-scope entry matches nothing.
        CalibrationDataError, NonFiniteError, InferenceError: from the statistics pass.
    """
    from ovq.kernels import get_kernels
    from ovq.quantization.ignored_scope import as_ignored_scope

    t0 = time.perf_counter()
    kernels = get_kernels(backend)
    scope = as_ignored_scope(ignored_scope)
    ignored = scope.resolve(graph, strict=strict) if not scope.is_empty() else set()
    ignored_names = {graph.op(n).name for n in ignored if graph.op(n).type == "Const"}
    sites, sel, last_skipped = find_sites(graph, ignored, ignored_names)
    # Statistics: before the ranking when it uses them (every MatMul observed), else only
    # for the MatMuls AWQ and scale estimation will touch (none: no pass at all).
    acts: dict[int, LayerActivations] | None = None
    t_stats = 0.0
    if opts.needs_statistics and opts.data_aware_ratio:
        t0_stats = time.perf_counter()
        acts = collect_activations(graph, sites, opts, dataset, progress=progress)
        t_stats = time.perf_counter() - t0_stats
    sel = select_precisions(graph, sites, sel, last_skipped, opts, sensitivity(opts, _row_errors(graph, kernels), acts))
    targets = find_targets(graph, sel.plans) if opts.awq else []
    if opts.needs_statistics and acts is None:
        wanted = {t.plan.site.const for t in targets} | {t.merge.const for t in targets if t.merge is not None}
        if opts.scale_estimation:
            wanted |= {p.site.const for p in sel.plans if p.precision is not None and p.precision.bits <= 4
                       and p.site.op_type == "MatMul"}
        t0_stats = time.perf_counter()
        acts = collect_activations(graph, [s for s in sites if s.const in wanted], opts, dataset, progress=progress)
        t_stats = time.perf_counter() - t0_stats
    samples = max((a.mean.shape[0] for a in acts.values()), default=0) if acts else 0
    report = CompressionReport(opts, ignored=sel.ignored, already_compressed=sel.already_compressed,
                               statistics_seconds=t_stats, samples=samples)
    if opts.awq:
        with _progress(progress, len(targets), "AWQ") as bar:
            report.awq_layers = apply_awq(graph, targets, acts, kernels, progress=bar)
    estimated: dict[int, EstimatedParams] = {}
    if opts.scale_estimation and acts is not None:
        todo = [plan for plan in sel.plans if plan.precision is not None and plan.precision.bits <= 4
                and plan.site.op_type == "MatMul" and plan.site.const in acts]
        with _progress(progress, len(todo), "scale estimation") as bar:
            for plan in todo:
                site = plan.site
                estimated[site.const] = estimate_scales(weight_matrix(graph, site), acts[site.const], plan.precision,
                                                        kernels, name=site.name)
                report.scale_estimated.append(site.name)
                bar.update(1)
    if sel.already_compressed:
        log.warning("%d layer(s) already have compressed weights and are left as they are: %s",
                    len(sel.already_compressed), ", ".join(sel.already_compressed[:5])
                    + (" ..." if len(sel.already_compressed) > 5 else ""))
    spill = SpillFile(spill_dir)
    with _progress(progress, len(sel.plans)) as bar:
        for plan in sel.plans:
            report.layers.append(_compress_one(graph, plan, spill, kernels, report, estimated.get(plan.site.const)))
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

    ``nncf.compress_weights`` 3.4-compatible (data-free and data-aware): same keywords, defaults and
    enum spellings (members of :class:`CompressWeightsMode`, :class:`BackupMode`, ... or
    their lowercase string values); the output uses OpenVINO's decompression subgraph,
    which the CPU plugin runs as FullyConnected with integer weights.

    Args:
        model: An ``openvino.Model`` (a new Model is returned; the input is untouched),
            an :class:`ovq.Graph` (a new Graph) or a model path (a Graph).
        mode: ``int8_asym`` (default), ``int8_sym``, ``int4_sym`` or ``int4_asym``.
        ratio: Share (by elements) of the ratio-defining weights in the 4-bit mode; the
            weights with the lowest ``sensitivity_metric`` score go first. Default 1.
        group_size: Weights per scale along the input channels (4-bit default 128; -1
            per channel).
        ignored_scope: An :class:`ovq.IgnoredScope` or dict; matched ops (or weight
            Consts) stay float.
        all_layers: Also put embeddings and the last MatMul in the 4-bit mode.
        dataset: Calibration samples (what ``ovq.quantize`` accepts, or an
            ``nncf.Dataset``) for the data-aware options; not with INT8 modes.
        sensitivity_metric: Layer ranking for ``ratio < 1``: ``weight_quantization_error``
            (default without a dataset), ``max_activation_variance`` (default with one),
            ``mean_activation_variance``, ``mean_activation_magnitude``,
            ``hessian_input_activation`` (:mod:`ovq.compression.sensitivity`).
        subset_size: Samples used for statistics (the first ones; default 128).
        awq: AWQ (:mod:`ovq.compression.awq`), data-aware with a dataset, else data-free.
        scale_estimation: Scale estimation (needs a dataset).
        gptq, lora_correction: not implemented (:class:`~ovq.errors.OptionError`).
        backup_mode: Precision of the other weights: ``int8_asym`` (default),
            ``int8_sym`` or ``none`` (float).
        compression_format, advanced_parameters: accepted for compatibility; only the
            default decompression format and NNCF's default advanced parameters exist.
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
                           group_size_fallback_mode=group_size_fallback_mode, subset_size=subset_size)
    is_ov = type(model).__module__.startswith("openvino")
    graph = read_model(model)
    if isinstance(model, Graph):
        graph = graph.copy()
    report = compress_graph(graph, opts, ignored_scope=ignored_scope, strict=strict, progress=progress,
                            spill_dir=spill_dir, dataset=dataset)
    out = graph.to_ov() if is_ov else graph
    return (out, report) if return_report else out
