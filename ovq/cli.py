"""The ``ovq`` command line.

Every subcommand turns an :class:`~ovq.errors.OvqError` into one line on stderr and a
non-zero exit status (2), so scripts can rely on it; a KeyboardInterrupt exits 130, a
SIGTERM 143, and, like any failure, they leave no partial output and no temporaries (all
writes are atomic; see ``docs/reliability.md``).
"""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import threading
from pathlib import Path

import click

from ovq.errors import OptionError, OvqError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ovq")
def cli() -> None:
    """ovq: post-training quantization compiler for OpenVINO models."""


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--runtime", is_flag=True,
              help="Also compile on CPU and show, per Convolution/MatMul, the precision and kernel OpenVINO chose.")
def inspect(model: Path, as_json: bool, runtime: bool) -> None:
    """Show a model's inputs, outputs, op histogram, weight bytes and FakeQuantize count."""
    from ovq.ir import read_model
    from ovq.ir.summary import summarize

    graph = read_model(model)
    summary = summarize(graph)
    report = None
    if runtime:
        from ovq.quantization import runtime_audit

        report = runtime_audit(graph)
    if as_json:
        data = summary.to_dict()
        if report is not None:
            data["runtime"] = {
                "summary": report.summary(),
                "layers": [{**dataclasses.asdict(e), "label": report.label(e)} for e in report.entries],
            }
        click.echo(json.dumps(data, indent=2, default=str))
        return
    click.echo(summary.format())
    if report is not None:
        click.echo("runtime (CPU, f32 hint):")
        click.echo(report.format())


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Output IR .xml.")
def convert(model: Path, output: Path) -> None:
    """Read MODEL (IR, ONNX, TFLite, ...) through the ovq mirror and write IR v11 (FP32 weights kept)."""
    from ovq.ir import read_model, save_model

    graph = read_model(model)
    graph.verify()
    save_model(graph, output)
    click.echo(f"wrote {output} ({len(graph)} layers)")


@cli.command("passes")
def list_passes() -> None:
    """List every registered pass (built-in and plugins) with its options."""
    import dataclasses
    import typing

    from ovq.pipeline import registered_passes

    for name, cls in registered_passes().items():
        click.echo(f"{name:<24} {cls.summary()}")
        hints = typing.get_type_hints(cls)
        for f in cls.option_fields():
            default = f.default if f.default is not dataclasses.MISSING else "required"
            hint = getattr(hints.get(f.name), "__name__", str(hints.get(f.name)))
            click.echo(f"{'':<26}{f.name}: {hint} = {default}")


@cli.command("run-passes")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-p", "--pipeline", "spec", required=True, help="Pipeline, e.g. 'fold-constants,eliminate-dead-code'.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Output IR .xml.")
@click.option("--fixpoint", is_flag=True, help="Repeat the pipeline until nothing changes.")
@click.option("--dump-after", multiple=True, help="Write the IR after this pass (repeatable).")
@click.option("--dump-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for --dump-after files (default: the output's folder).")
@click.option("--no-verify", is_flag=True, help="Skip graph verification after changing passes.")
@click.option("--target-device", "--target", "target", default=None,
              help="Target device passed to the passes (as in `ovq quantize`).")
def run_passes(model: Path, spec: str, output: Path, fixpoint: bool, dump_after: tuple[str, ...],
               dump_dir: Path | None, no_verify: bool, target: str | None) -> None:
    """Run a pass pipeline on MODEL and write the result as IR."""
    from ovq.ir import read_model, save_model
    from ovq.pipeline import PassContext, Pipeline

    pipeline = Pipeline(spec, fixpoint=fixpoint)
    unknown = sorted(set(dump_after) - {p.name for p in pipeline.passes})
    if unknown:
        raise OptionError(f"--dump-after: {', '.join(map(repr, unknown))} is not a pass of the pipeline "
                          f"({', '.join(p.name for p in pipeline.passes)})")
    graph = read_model(model)
    ctx = PassContext(target=target, verify=not no_verify, dump_after=set(dump_after),
                      dump_dir=dump_dir or output.parent)
    pipeline.run(graph, ctx)
    save_model(graph, output)
    for record in ctx.records:
        click.echo(record.describe())
    click.echo(f"wrote {output} ({len(graph)} layers)")


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Output IR .xml.")
@click.option("--mean-values", default=None,
              help="Embedded in the model: subtracted per input, e.g. 'image[123.675,116.28,103.53]' or '[127.5]'.")
@click.option("--scale-values", default=None,
              help="Embedded in the model: divisors per input, e.g. 'image[58.395,57.12,57.375]' or '[127.5]'.")
@click.option("--reverse-input-channels", is_flag=True, help="Swap RGB<->BGR on every 3-channel input (done first).")
@click.option("--layout", default=None, help="Per input, e.g. 'image(nchw)' or 'nhwc'.")
@click.option("--batch", type=int, default=None, help="Set the batch dimension of every input.")
def preprocess(model: Path, output: Path, mean_values: str | None, scale_values: str | None,
               reverse_input_channels: bool, layout: str | None, batch: int | None) -> None:
    """Embed Model Optimizer-style preprocessing into MODEL (folded into the first conv where exact)."""
    from ovq.preprocess import preprocess_cli

    written = preprocess_cli(model, output, mean_values=mean_values, scale_values=scale_values,
                             reverse_input_channels=reverse_input_channels, layout=layout, batch=batch)
    click.echo(f"wrote {written}")


@cli.command()
@click.argument("model", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Output IR .xml (with --config, an existing folder gets <model_name>.xml as POT wrote).")
@click.option("--data", type=click.Path(path_type=Path),
              help="Calibration data: a folder of images, a .npy/.npz file, or a folder of them.")
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path),
              help="A POT JSON config (model / engine: simplified or Accuracy Checker / compression with "
                   "DefaultQuantization or AccuracyAwareQuantization).")
@click.option("--target-device", "--target", "target_device", default=None,
              help="ANY (default), CPU, GPU, NPU, CPU_SPR, GNA, GNA3 or a descriptor file.")
@click.option("--preset", type=click.Choice(["performance", "mixed"], case_sensitive=False), default=None,
              help="performance: symmetric activations; mixed: asymmetric (default for transformers).")
@click.option("--subset-size", type=int, default=None, help="Calibration samples (default 300).")
@click.option("--model-type", type=click.Choice(["transformer"], case_sensitive=False), default=None,
              help="transformer: NNCF's transformer rules (Add, Multiply, MVN, ... left in float; symmetric "
                   "activation x activation MatMul inputs), mixed preset and SmoothQuant 0.95 by default. "
                   "Not given: a generic model (CNNs).")
@click.option("--ignored-scope", default=None,
              help="Op names (comma-separated), JSON {\"names\", \"types\", \"patterns\"}, or a .json file.")
@click.option("--bias-correction", type=click.Choice(["fast", "full", "none"]), default=None,
              help="fast (default), full (propagating, slower) or none.")
@click.option("--no-compress-weights", is_flag=True, help="Keep weights as FakeQuantize on FP32 constants.")
@click.option("--smooth-quant", default=None, metavar="ALPHA|search|off",
              help="SmoothQuant for MatMuls: an alpha (0.95 is the default with --model-type transformer), "
                   "'search' (an alpha per layer group, slower, more accurate) or 'off' (the default otherwise).")
@click.option("--overflow-fix", type=click.Choice(["auto", "first_layer", "enable", "disable"]), default=None,
              help="7-bit weights against int16 saturation on x86 CPUs without VNNI: auto (default: the output "
                   "channels where measured saturation costs more than the coarser grid), first_layer (NNCF's "
                   "default), enable (all layers) or disable.")
@click.option("--range-search", type=click.Choice(["none", "activations", "weights", "all"]), default=None,
              help="Narrow activation and/or per-channel weight ranges where that lowers each layer's quantized "
                   "output error on the first 4 calibration samples (default none; see docs/accuracy.md).")
@click.option("--quantize-recurrent", "quantize_recurrent", flag_value=True, default=None,
              help="Quantize LSTM/GRU sequences too (faster on CPU, less accurate; docs/accuracy.md).")
@click.option("--no-channel-split", "channel_split", flag_value=False, default=None,
              help="Do not split the outlier input channels SmoothQuant moves into MatMul weights (docs/accuracy.md).")
@click.option("--input-shape", default=None, help="Completes dynamic input dims, e.g. '1,3,224,224'.")
@click.option("--layout", default=None, help="Images: the input layout, e.g. 'nchw' or 'nhwc'.")
@click.option("--data-mean-values", "--mean-values", "mean_values", default=None,
              help="Calibration images only: subtracted per channel when --data images are read, e.g. "
                   "'[123.675,116.28,103.53]'; the model is not changed (to embed it: `ovq preprocess`).")
@click.option("--data-scale-values", "--scale-values", "scale_values", default=None,
              help="Calibration images only: divisors per channel, e.g. '[58.395,57.12,57.375]'; "
                   "the model is not changed.")
@click.option("--reverse-input-channels", is_flag=True, help="Images: feed BGR instead of RGB.")
@click.option("--seed", type=int, default=None, help="Seed of the calibration subset draw (default 0).")
@click.option("--no-audit", is_flag=True, help="Skip compiling the result to report runtime INT8 coverage.")
@click.option("--pipeline", default=None, metavar="PASSES",
              help="Passes to run before placement, e.g. 'fold-constants,fuse-batchnorm' (see `ovq passes`).")
@click.option("--dump-after", multiple=True, metavar="PHASE",
              help="Write the IR (next to the output, NNN-PHASE.xml) after this phase or --pipeline pass "
                   "(repeatable); phases: placement, statistics, smooth_quant, ranges, range_search, overflow_fix, "
                   "bias_correction, compress.")
@click.option("--validate", default=None, metavar="MODULE:FUNCTION",
              help="Accuracy control: the metric, FUNCTION(compiled_model, validation_data) -> float (higher "
                   "is better), from a module or a file.py; the fewest layers are left in float to keep the "
                   "drop within --max-drop.")
@click.option("--max-drop", type=float, default=None, help="Accuracy control: the allowed drop (default 0.01).")
@click.option("--drop-type", type=click.Choice(["absolute", "relative"]), default=None,
              help="Accuracy control: absolute (default) or relative drop.")
@click.option("--max-iterations", type=click.IntRange(min=0), default=None,
              help="Accuracy control: at most this many metric calls after the FP and INT8 ones.")
@click.option("--validation-data", type=click.Path(path_type=Path), default=None,
              help="Accuracy control: the data passed to the metric (default: --data).")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write an HTML report here (a JSON twin goes next to it): per-layer ranges, runtime "
                   "precision, latency, histograms, the graph.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def quantize(model: Path | None, output: Path | None, data: Path | None, config: Path | None,
             bias_correction: str | None, no_compress_weights: bool, no_audit: bool, quiet: bool,
             **options: object) -> None:
    """Quantize MODEL to INT8 with calibration data and write the result as IR."""
    from ovq.quantization.quantize_cli import job_from_options, parse_ignored_scope, run_quantize_job

    options["ignored_scope"] = parse_ignored_scope(options["ignored_scope"])  # type: ignore[arg-type]
    options["bias_correction"] = bias_correction
    options["compress_weights"] = False if no_compress_weights else None
    options["audit"] = not no_audit
    options["progress"] = False if quiet else None
    job = job_from_options(model, output, data, config, options)
    run_quantize_job(job, echo=click.echo)


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Output IR .xml.")
@click.option("--mode", default="int8_asym", show_default=True,
              type=click.Choice(["int8_asym", "int8_sym", "int4_asym", "int4_sym"], case_sensitive=False),
              help="Primary weight precision.")
@click.option("--group-size", type=int, default=None,
              help="Weights per scale along the input channels (4-bit default 128; -1: per channel).")
@click.option("--ratio", type=float, default=None,
              help="4-bit modes: share of the MatMul weights (by elements) in 4 bits, least sensitive first.")
@click.option("--all-layers", is_flag=True, help="4-bit modes: the embeddings and the last MatMul in 4 bits too.")
@click.option("--backup-mode", default=None, type=click.Choice(["int8_asym", "int8_sym", "none"], case_sensitive=False),
              help="4-bit modes: precision of the other weights (default int8_asym; none keeps them float).")
@click.option("--group-size-fallback", default=None, type=click.Choice(["error", "ignore", "adjust"]),
              help="Weights whose input channels the group size does not divide: error (default), ignore (float) "
                   "or adjust (a smaller power-of-two group).")
@click.option("--ignored-scope", default=None,
              help="Op names (comma-separated), JSON {\"names\", \"types\", \"patterns\"}, or a .json file.")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Calibration data for data-aware compression (a folder, glob, .txt list, .npy or .npz, "
                   "as ovq quantize; docs/quantize-data.md). 4-bit modes only.")
@click.option("--awq", is_flag=True, help="AWQ: data-aware with --data, else data-free.")
@click.option("--scale-estimation", is_flag=True, help="Scale estimation (needs --data).")
@click.option("--sensitivity-metric", default=None,
              type=click.Choice(["weight_quantization_error", "hessian_input_activation", "mean_activation_variance",
                                 "max_activation_variance", "mean_activation_magnitude"], case_sensitive=False),
              help="Layer ranking for --ratio < 1 (default max_activation_variance with --data, else "
                   "weight_quantization_error).")
@click.option("--subset-size", type=int, default=128, show_default=True,
              help="Calibration samples used for statistics (the first ones).")
@click.option("--no-audit", is_flag=True, help="Skip compiling the result to report the FullyConnected weight precisions.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write an HTML report of the result here (a .json twin beside it; docs/report.md).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def compress(model: Path, output: Path, mode: str, group_size: int | None, ratio: float | None, all_layers: bool,
             backup_mode: str | None, group_size_fallback: str | None, ignored_scope: str | None, data: Path | None,
             awq: bool, scale_estimation: bool, sensitivity_metric: str | None, subset_size: int, no_audit: bool,
             report_path: Path | None, quiet: bool) -> None:
    """Compress MODEL's weights to 8 or 4 bits (nncf.compress_weights-compatible, data-free or with --data)
    and write IR."""
    from ovq.compression.cli import CompressJob, run_compress_job
    from ovq.quantization.quantize_cli import parse_ignored_scope

    job = CompressJob(model=model, output=output, mode=mode.lower(), group_size=group_size, ratio=ratio,
                      all_layers=all_layers, backup_mode=backup_mode, group_size_fallback=group_size_fallback,
                      ignored_scope=parse_ignored_scope(ignored_scope), data=data, awq=awq,
                      scale_estimation=scale_estimation, sensitivity_metric=sensitivity_metric,
                      subset_size=subset_size, audit=not no_audit, progress=False if quiet else None)
    if report_path is not None:
        from ovq.report import check_target

        check_target(report_path)  # before any work
    run_compress_job(job, echo=click.echo)
    if report_path is not None:
        from ovq.report import report_model

        report_model(job.output, report_path, fp_model=model, source="ovq compress",
                     options={"mode": job.mode, "group_size": group_size, "ratio": ratio, "all_layers": all_layers,
                              "awq": awq, "scale_estimation": scale_estimation},
                     progress=False if quiet else None, echo=click.echo)


@cli.command()
@click.argument("fp_model", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("int8_model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--data", required=True, type=click.Path(path_type=Path),
              help="Samples: a folder of images, a .npy/.npz file, or a folder of them (as ovq quantize).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the whole table as JSON here.")
@click.option("--top", type=int, default=20, show_default=True, help="Layers to print, worst first (0: all).")
@click.option("--subset-size", type=int, default=300, show_default=True, help="Samples to stream.")
@click.option("--input-shape", default=None, help="Completes dynamic input dims, e.g. '1,3,224,224'.")
@click.option("--layout", default=None, help="Images: the input layout, e.g. 'nchw' or 'nhwc'.")
@click.option("--data-mean-values", "--mean-values", "mean_values", default=None,
              help="Images only: subtracted per channel when --data images are read, e.g. "
                   "'[123.675,116.28,103.53]'; the models are not changed.")
@click.option("--data-scale-values", "--scale-values", "scale_values", default=None,
              help="Images only: divisors per channel, e.g. '[58.395,57.12,57.375]'.")
@click.option("--reverse-input-channels", is_flag=True, help="Images: feed BGR instead of RGB.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample draw.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def analyze(fp_model: Path, int8_model: Path, data: Path, json_out: Path | None, top: int, subset_size: int,
            seed: int, quiet: bool, **data_options: object) -> None:
    """Per-layer quantization error of INT8_MODEL against FP_MODEL (SQNR, saturation, ranges)."""
    from ovq.quantization.analyze import run_analyze_cli

    run_analyze_cli(fp_model, int8_model, data, json_out=json_out, top=top or None, subset_size=subset_size,
                    seed=seed, progress=False if quiet else None, data_options=data_options, echo=click.echo)


@cli.command("report")
@click.argument("int8_model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The HTML page (default: INT8_MODEL with .html); the JSON twin goes next to it.")
@click.option("--fp", "fp_model", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The FP model INT8_MODEL was made from: FP32 latency, size before, histograms.")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Samples (as ovq quantize --data): activation histograms; with --fp, the per-layer error.")
@click.option("--no-analyze", is_flag=True, help="With --fp and --data: skip the per-layer error analysis.")
@click.option("--subset-size", type=int, default=300, show_default=True, help="Samples the analysis streams.")
@click.option("--input-shape", default=None, help="Completes dynamic input dims, e.g. '1,3,224,224'.")
@click.option("--layout", default=None, help="Images: the input layout, e.g. 'nchw' or 'nhwc'.")
@click.option("--mean-values", default=None, help="Images: subtracted per channel, e.g. '[123.675,116.28,103.53]'.")
@click.option("--scale-values", default=None, help="Images: divisors per channel, e.g. '[58.395,57.12,57.375]'.")
@click.option("--reverse-input-channels", is_flag=True, help="Images: feed BGR instead of RGB.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def report(int8_model: Path, output: Path | None, fp_model: Path | None, data: Path | None, no_analyze: bool,
           subset_size: int, quiet: bool, **data_options: object) -> None:
    """HTML report of INT8_MODEL (quantized by ovq, NNCF or POT): per-layer table, plots, graph."""
    from ovq.report.cli import run_report_cli

    run_report_cli(int8_model, output or int8_model.with_suffix(".html"), fp_model=fp_model, data=data,
                   analyze=not no_analyze, subset_size=subset_size, progress=False if quiet else None,
                   data_options=data_options, echo=click.echo)


@cli.group()
def hw() -> None:
    """Hardware descriptors: list, show and validate targets."""


@hw.command("list")
def hw_list() -> None:
    """List the shipped targets."""
    from ovq.hw import ALIASES, list_targets, load_descriptor

    for name in list_targets():
        click.echo(f"{name:<8} {load_descriptor(name).description}")
    click.echo("aliases: " + ", ".join(f"{a} -> {b}" for a, b in sorted(ALIASES.items())))


@hw.command("show")
@click.argument("target")
def hw_show(target: str) -> None:
    """Show a target's quantization spaces and op table (a name or a descriptor file)."""
    from ovq.hw import load_descriptor

    click.echo(load_descriptor(target).describe())


@hw.command("validate")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def hw_validate(path: Path) -> None:
    """Validate a descriptor file (ours, TOML or JSON, or a POT hardware config JSON)."""
    from ovq.hw import validate_file

    d = validate_file(path)
    click.echo(f"{path}: valid descriptor for target {d.target!r} ({len(d.ops)} op rules, {len(d.spaces)} spaces)")


@cli.command()
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--outdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder: outputs (by the manifest's template), journal, logs, summary.json/.csv, "
                   "index.html.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Jobs at once (default: the cores here; on Ray, the cluster's CPUs).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: worker processes on this machine; ray: Ray tasks (pip install 'ovq[ray]').")
@click.option("--ray-address", default=None,
              help="Ray cluster to join ('auto', HOST:PORT); without it --engine ray starts a local Ray.")
@click.option("--retry", type=click.IntRange(min=0), default=1, show_default=True,
              help="Times a job whose worker died (segfault, OOM kill) runs again in a fresh process.")
@click.option("--force", is_flag=True, help="Run every job, even those the journal has done with the same key.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="OpenVINO threads per job (default: cores // jobs).")
@click.option("--shards", type=click.IntRange(min=1), default=None,
              help="Split each quantize job's calibration subset into K slices whose statistics run as separate "
                   "tasks, merged bit for bit (a job's own 'shards' field wins). Default 1.")
@click.option("--report", is_flag=True,
              help="Each job also writes its HTML report (+ JSON twin) beside its output (int8.xml -> "
                   "int8.report.html; a job's own 'report' field wins); OUTDIR/index.html links them.")
def batch(manifest: Path, outdir: Path, jobs: int | None, engine: str, ray_address: str | None, retry: int,
          force: bool, threads: int | None, shards: int | None, report: bool) -> int:
    """Run every job of MANIFEST (TOML/JSON), skipping those done before; see docs/batch.md.

    Exits 0 when every job is done, 1 when some failed, 2 on a bad manifest or output folder.
    """
    from ovq.batch import run

    result = run(manifest, outdir, jobs=jobs, engine=engine, ray_address=ray_address, retry=retry, force=force,
                 threads=threads, shards=shards, report=report)
    click.echo(result.table())
    click.echo(f"summary: {result.summary_json}, {result.summary_csv}")
    click.echo(f"index: {result.index_html}")
    return 1 if result.failed else 0


@cli.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also keep the model ovq wrote here (IR .xml).")
def demo(output: Path | None) -> None:
    """Run ovq on the built-in demo model (a digits CNN) and report what it did."""
    from ovq.demo import run_demo

    run_demo(output, echo=click.echo)


# click >= 8.2 raises this (a UsageError) for a group called without a command.
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


class _Terminated(BaseException):
    """SIGTERM, raised as an exception so that every ``finally`` removes its temporaries."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ovq`` console script.

    While it runs, SIGTERM unwinds like Ctrl-C (temporaries removed, exit 143); the
    previous handler is restored on return.
    """
    installed = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if installed else None
    try:
        return _main(argv)
    except _Terminated:
        click.echo("ovq: terminated", err=True)
        return 143
    finally:
        if installed:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _main(argv: list[str] | None) -> int:
    try:
        status = cli.main(args=argv, prog_name="ovq", standalone_mode=False)
    except OvqError as exc:
        message = " | ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        if exc.pass_name is not None:
            message += f" (in pass {exc.pass_name!r})"
        click.echo(f"ovq: error: {message}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("ovq: interrupted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("ovq: interrupted", err=True)
        return 130
    except _NO_ARGS_IS_HELP as exc:  # `ovq` or `ovq hw` alone: the help, as click shows it
        exc.show()
        return exc.exit_code
    except click.UsageError as exc:
        # One style for every error: click's usage errors on one line like ours.
        command = exc.ctx.command_path if exc.ctx is not None else "ovq"
        message = " ".join(exc.format_message().split())
        click.echo(f"ovq: error: {message} (see '{command} --help')", err=True)
        return 2
    except click.ClickException as exc:
        click.echo(f"ovq: error: {' '.join(exc.format_message().split())}", err=True)
        return exc.exit_code
    return status if isinstance(status, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
