"""Passes and pipelines: the compiler's spine.

Write a pass::

    from dataclasses import dataclass
    from ovq.pipeline import Pass, register_pass

    @register_pass
    @dataclass(frozen=True)
    class DropIdentityPass(Pass):
        \"\"\"Remove Convert ops that convert to their own input type.\"\"\"
        name = "drop-identity"
        def run(self, graph, ctx): ...

and run it: ``ovq.run_pipeline(model, "fold-constants,drop-identity")`` or
``ovq run-passes MODEL -p drop-identity -o OUT.xml``. Packages register passes through
the ``ovq.passes`` entry-point group.
"""

from ovq.pipeline.base import (
    ENTRY_POINT_GROUP,
    Pass,
    PassError,
    PassResult,
    get_pass,
    register_pass,
    registered_passes,
)
from ovq.pipeline.context import Instrument, PassContext, PassRecord
from ovq.pipeline.manager import Pipeline, run_pipeline
from ovq.pipeline.spec import format_pipeline, parse_pipeline, split_spec

__all__ = [
    "ENTRY_POINT_GROUP",
    "Instrument",
    "Pass",
    "PassContext",
    "PassError",
    "PassRecord",
    "PassResult",
    "Pipeline",
    "format_pipeline",
    "get_pass",
    "parse_pipeline",
    "register_pass",
    "registered_passes",
    "run_pipeline",
    "split_spec",
]
