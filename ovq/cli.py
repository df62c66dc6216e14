"""The ``ovq`` command line.

Every subcommand turns an :class:`~ovq.errors.OvqError` into one line on stderr and a
non-zero exit status (2), so scripts can rely on it; a KeyboardInterrupt exits 130
and, like any failure, leaves no partial output (all writes are atomic).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from ovq.errors import OvqError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ovq")
def cli() -> None:
    """ovq: post-training quantization compiler for OpenVINO models."""


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def inspect(model: Path, as_json: bool) -> None:
    """Show a model's inputs, outputs, op histogram, weight bytes and FakeQuantize count."""
    from ovq.ir import read_model
    from ovq.ir.summary import summarize

    summary = summarize(read_model(model))
    click.echo(json.dumps(summary.to_dict(), indent=2) if as_json else summary.format())


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


@cli.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also keep the model ovq wrote here (IR .xml).")
def demo(output: Path | None) -> None:
    """Run ovq on the built-in demo model (a digits CNN) and report what it did."""
    from ovq.demo import run_demo

    run_demo(output, echo=click.echo)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ovq`` console script."""
    try:
        cli.main(args=argv, prog_name="ovq", standalone_mode=False)
    except OvqError as exc:
        message = " | ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        click.echo(f"ovq: error: {message}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("ovq: interrupted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("ovq: interrupted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
