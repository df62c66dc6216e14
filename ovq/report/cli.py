"""``ovq report INT8.xml [--fp FP32.xml] [--data PATH]``: the report of a model quantized earlier."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ovq.errors import IRError
from ovq.report import ModelReport, check_target, report_model


def run_report_cli(int8_model: Path, output: Path, *, fp_model: Path | None = None, data: Path | None = None,
                   analyze: bool = True, subset_size: int | None = 300, progress: bool | None = None,
                   data_options: dict[str, Any] | None = None,
                   echo: Callable[[str], None] = print) -> ModelReport:
    """Load the models and data, gather, write; the per-layer analysis runs when both
    ``fp_model`` and ``data`` are given (unless ``analyze`` is False)."""
    from ovq.ir.bridge import core
    from ovq.quantization.data_sources import load_calibration_data
    from ovq.quantization.quantize_cli import _model_inputs

    check_target(output)
    if not Path(int8_model).is_file():
        raise IRError(f"INT8 model {int8_model}: no such file")
    samples = None
    if data is not None:
        reference = fp_model if fp_model is not None else int8_model
        if not Path(reference).is_file():
            raise IRError(f"FP model {reference}: no such file")
        try:
            model = core().read_model(str(reference))
        except RuntimeError as exc:
            raise IRError(f"model {reference}: OpenVINO cannot read it: {str(exc).strip().splitlines()[0]}") from None
        options = {k: v for k, v in (data_options or {}).items() if v}
        samples = load_calibration_data(data, _model_inputs(model), **options)
    return report_model(int8_model, output, fp_model=fp_model, data=samples,
                        analyze=analyze and fp_model is not None and samples is not None, subset_size=subset_size,
                        progress=progress, model_name=str(int8_model), echo=echo)
