"""``ovq batch``: quantize many models from a manifest, resumably, locally or on Ray.

:func:`run` is the API (``ovq batch`` the CLI); docs/batch.md describes the manifest,
the journal, the engines and what a rerun after a crash does.
"""

from __future__ import annotations

from ovq.batch.driver import BatchResult, run
from ovq.batch.kinds import KINDS, JobKind, register_kind
from ovq.batch.manifest import Job, load_manifest
from ovq.batch.progress import JobRecord

__all__ = ["BatchResult", "Job", "JobKind", "JobRecord", "KINDS", "load_manifest", "register_kind", "run"]
