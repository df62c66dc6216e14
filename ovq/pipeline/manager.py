"""Running pipelines: ordered passes, optional fixpoint, verification, dumps, run log."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ovq.errors import OvqError
from ovq.pipeline.base import Pass, PassError, PassResult, note_pass
from ovq.pipeline.context import PassContext, PassRecord, Timer
from ovq.pipeline.spec import format_pipeline, parse_pipeline

if TYPE_CHECKING:
    import openvino as ov

    from ovq.ir.graph import Graph


class Pipeline:
    """An ordered list of passes, optionally repeated until nothing changes.

    Args:
        passes: Pass objects or a textual spec (see :mod:`ovq.pipeline.spec`).
        fixpoint: Repeat the whole list until an iteration changes nothing.
        max_iterations: Bound on fixpoint iterations (a pipeline that still changes the
            graph then raises :class:`PassError`).
    """

    def __init__(self, passes: str | Sequence[Pass], *, fixpoint: bool = False, max_iterations: int = 10):
        self.passes = parse_pipeline(passes)
        self.fixpoint = fixpoint
        self.max_iterations = max_iterations

    def __repr__(self) -> str:
        return f"Pipeline({self.spec()!r}, fixpoint={self.fixpoint})"

    def spec(self) -> str:
        """The textual form of the pass list."""
        return format_pipeline(self.passes)

    def run(self, graph: Graph, ctx: PassContext | None = None) -> PassResult:
        """Run on ``graph`` in place; ``modified`` is true if any pass changed it.

        Raises:
            OvqError: a pass raised it; it propagates as itself with ``pass_name`` and
                ``passes_before`` set and a note naming the pass.
            PassError: a pass failed with another exception (a bug in the pass, kept as
                ``__cause__``), the graph failed verification after a pass, or a
                fixpoint pipeline kept changing the graph.
        """
        ctx = ctx or PassContext()
        start_revision = graph.revision
        iterations = self.max_iterations if self.fixpoint else 1
        for iteration in range(iterations):
            before = graph.revision
            for pass_ in self.passes:
                self._run_one(pass_, graph, ctx, iteration)
            if graph.revision == before:
                break
        else:
            if self.fixpoint:
                raise PassError(f"pipeline {self.spec()!r} did not reach a fixpoint in {self.max_iterations} iterations")
        return PassResult(graph, graph.revision != start_revision)

    def _run_one(self, pass_: Pass, graph: Graph, ctx: PassContext, iteration: int) -> None:
        done = [r.spec for r in ctx.records]
        for inst in ctx.instruments:
            inst.before_pass(pass_, graph, ctx)
        ops_before = len(graph)
        try:
            with Timer() as timer:
                result = pass_(graph, ctx)
        except OvqError as exc:
            note_pass(exc, pass_.name, done)
            raise
        except Exception as exc:  # a bug in the pass
            raise PassError(f"pass {pass_.name!r} failed after {done}: {type(exc).__name__}: {exc}",
                            pass_name=pass_.name, passes_before=done) from exc
        ctx.log_step(PassRecord(pass_.name, pass_.spec(), result.modified, timer.seconds, ops_before, len(graph),
                                iteration))
        if result.modified and ctx.verify:
            try:
                graph.verify()
            except OvqError as exc:
                raise PassError(f"graph invalid after pass {pass_.name!r} (passes before: {done}): {exc}",
                                pass_name=pass_.name, passes_before=done) from exc
        ctx.dump_if_asked(pass_.name, graph)
        for inst in ctx.instruments:
            inst.after_pass(pass_, graph, ctx, result)


def run_pipeline(
    model: ov.Model | Graph | str | os.PathLike[str],
    spec: str | Sequence[Pass],
    *,
    ctx: PassContext | None = None,
    fixpoint: bool = False,
    output: str | os.PathLike[str] | None = None,
) -> Any:
    """Run a pipeline on a model and return the same kind of thing.

    Args:
        model: An ``openvino.Model`` (returns a new ``openvino.Model``), an
            :class:`ovq.Graph` (edited in place and returned), or a model path (returns the
            edited Graph, or the written ``.xml`` path when ``output`` is given).
        spec: Textual pipeline or pass objects.
        ctx: Pass context (target, instruments, run log); a default one otherwise.
        fixpoint: Repeat the pipeline until nothing changes.
        output: Write the result as IR here (atomically).
    """
    import openvino as ov

    from ovq.ir import Graph, read_model, save_model

    graph = read_model(model)
    Pipeline(spec, fixpoint=fixpoint).run(graph, ctx)
    if output is not None:
        written = save_model(graph, output)
        if not isinstance(model, (ov.Model, Graph)):
            return written
    if isinstance(model, ov.Model):
        return graph.to_ov()
    return graph
