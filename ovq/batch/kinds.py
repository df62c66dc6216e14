"""The job kinds ``ovq batch`` runs, and the one registry they are looked up in.

A :class:`JobKind` names the API function whose keyword options a manifest job may set
(the manifest is validated against that function's signature), the job fields the kind
needs beyond options (``metric`` for accuracy control), and the function a worker calls
to run one job (``module:function``, imported in the worker only). A new kind plugs in
with one :func:`register_kind` call; a kind that is planned but not built yet is listed
in :data:`PLANNED_KINDS` so a manifest naming it gets a clear refusal, not "unknown".
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass

__all__ = ["JobKind", "KINDS", "PLANNED_KINDS", "register_kind", "get_kind"]


@dataclass(frozen=True)
class JobKind:
    """One kind of batch job.

    Attributes:
        name: The manifest's ``kind = "..."`` value.
        api: ``module:function`` of the public API whose keyword options a job may set.
        reserved: Parameters of ``api`` the batch runner fills itself (never from a manifest;
            ``report`` is the job field of that name, a report beside the output).
        required: Job fields a job of this kind must give (e.g. ``metric``).
        runner: ``module:function`` called in a worker as ``runner(spec, staged, phase)``.
        needs_data: Whether a job must name calibration ``data``.
    """

    name: str
    api: str
    reserved: frozenset[str]
    runner: str
    required: tuple[str, ...] = ()
    needs_data: bool = True

    def options(self) -> tuple[str, ...]:
        """The keyword options a manifest may give for this kind (from ``api``'s signature)."""
        module, _, attr = self.api.partition(":")
        fn = getattr(importlib.import_module(module), attr)
        params = inspect.signature(fn).parameters.values()
        names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if self.api.endswith("quantize_with_accuracy_control"):
            # Its **quantize_options are ovq.quantize's remaining keywords.
            names += [n for n in KINDS["quantize"].options() if n not in names]
        return tuple(n for n in names if n not in self.reserved)


KINDS: dict[str, JobKind] = {}

#: Kinds that are designed but not available in this version, with the reason shown.
PLANNED_KINDS: dict[str, str] = {}


def register_kind(kind: JobKind) -> None:
    """Add ``kind`` to the registry (replacing a planned entry of the same name)."""
    KINDS[kind.name] = kind
    PLANNED_KINDS.pop(kind.name, None)


def get_kind(name: str) -> JobKind | str:
    """The kind called ``name``, or the reason it cannot be used (a sentence)."""
    if name in KINDS:
        return KINDS[name]
    if name in PLANNED_KINDS:
        return f"job kind {name!r} is not available yet: {PLANNED_KINDS[name]}"
    return f"unknown job kind {name!r} (kinds: {', '.join(sorted(KINDS))})"


register_kind(JobKind(
    name="quantize", api="ovq.quantization.quantize:quantize",
    reserved=frozenset({"model", "calibration_dataset", "return_report", "progress", "dump_dir", "report"}),
    runner="ovq.batch.worker:run_quantize"))
register_kind(JobKind(
    name="quantize-with-accuracy-control", api="ovq.quantization.accuracy_control:quantize_with_accuracy_control",
    reserved=frozenset({"model", "calibration_dataset", "validation_dataset", "validation_fn", "return_report",
                        "progress", "dump_dir", "quantize_options", "report"}),
    runner="ovq.batch.worker:run_accuracy_control", required=("metric",)))
register_kind(JobKind(
    name="compress", api="ovq.compression.compress:compress_weights",
    reserved=frozenset({"model", "dataset", "return_report", "progress", "spill_dir"}),
    runner="ovq.batch.worker:run_compress", needs_data=False))
