"""The pass context: target, options and instruments shared by a pipeline run."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ovq.ir.graph import Graph
    from ovq.pipeline.base import Pass, PassResult

log = logging.getLogger("ovq.pipeline")


class Instrument(Protocol):
    """Hooks called around every pass of a pipeline."""

    def before_pass(self, pass_: Pass, graph: Graph, ctx: PassContext) -> None: ...

    def after_pass(self, pass_: Pass, graph: Graph, ctx: PassContext, result: PassResult) -> None: ...


@dataclass
class PassRecord:
    """One entry of the run log: a pass, whether it changed the graph, how long it took."""

    name: str
    spec: str
    modified: bool
    seconds: float
    ops_before: int
    ops_after: int
    iteration: int = 0

    def describe(self) -> str:
        """One line for logs and ``ovq run-passes``."""
        change = f"changed ({self.ops_before} -> {self.ops_after} ops)" if self.modified else "no change"
        return f"{self.spec}: {change} in {self.seconds * 1000:.1f} ms"


@dataclass
class PassContext:
    """What every pass of a run can see.

    Attributes:
        target: Target device name (``CPU``, ``GPU``, ...) or ``None`` when irrelevant.
        verify: Run ``graph.verify()`` after every pass that changed the graph.
        dump_after: Pass names after which the graph is written as IR into ``dump_dir``.
        dump_dir: Folder for those dumps.
        instruments: Extra hooks around each pass.
        records: The run log, appended by the pipeline (one :class:`PassRecord` per pass run).
    """

    target: str | None = None
    verify: bool = True
    dump_after: set[str] = field(default_factory=set)
    dump_dir: Path | None = None
    instruments: list[Instrument] = field(default_factory=list)
    records: list[PassRecord] = field(default_factory=list)

    def log_step(self, record: PassRecord) -> None:
        """Append ``record`` (a pass or quantize phase that just ran) to the run log."""
        self.records.append(record)
        log.info(record.describe())

    def dump_if_asked(self, name: str, graph: Graph) -> Path | None:
        """Write ``graph`` as ``NNN-name.xml`` into ``dump_dir`` (default: the current
        folder) when ``dump_after`` names ``name``; return the path written."""
        if name not in self.dump_after:
            return None
        from ovq.ir.writer import save_model

        path = save_model(graph, Path(self.dump_dir or Path.cwd()) / f"{len(self.records):03d}-{name}.xml")
        log.info("dumped IR after %s to %s", name, path)
        return path

    def timings(self) -> dict[str, float]:
        """Total seconds per pass name over the run."""
        totals: dict[str, float] = {}
        for rec in self.records:
            totals[rec.name] = totals.get(rec.name, 0.0) + rec.seconds
        return totals


class Timer:
    """A tiny context manager measuring wall time."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
