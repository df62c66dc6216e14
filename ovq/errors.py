"""The exceptions ovq raises on bad input.

Every error a user can cause derives from :class:`OvqError`, so callers (and the CLI)
can catch one class. Messages name the file, layer or field at fault.
"""

from __future__ import annotations


class OvqError(Exception):
    """Base class of every error ovq raises on purpose."""


class IRError(OvqError):
    """A model file or in-memory IR is malformed, inconsistent or hostile."""


class GraphError(OvqError):
    """A graph edit or query was invalid (unknown node, port out of range, ...)."""


class VerificationError(GraphError):
    """``Graph.verify()`` found an inconsistency; the message lists every problem."""


class BackendError(OvqError):
    """A requested kernel backend is not available (``OVQ_KERNELS``)."""
