"""The exceptions ovq raises on bad input.

Every error a user can cause derives from :class:`OvqError`, so callers (and the CLI)
can catch one class. Messages name the file, layer or field at fault.
"""

from __future__ import annotations


class OvqError(Exception):
    """Base class of every error ovq raises on purpose.

    Attributes:
        pass_name: The pipeline pass the error was raised in (``None`` outside a pass).
        passes_before: Specs of the passes that ran before that one.
    """

    pass_name: str | None = None
    passes_before: tuple[str, ...] = ()


class IRError(OvqError):
    """A model file or in-memory IR is malformed, inconsistent or hostile."""


class GraphError(OvqError):
    """A graph edit or query was invalid (unknown node, port out of range, ...)."""


class VerificationError(GraphError):
    """``Graph.verify()`` found an inconsistency; the message lists every problem."""


class BackendError(OvqError):
    """A requested kernel backend is not available (``OVQ_KERNELS``)."""


class KernelError(OvqError, ValueError):
    """A numeric kernel got input it cannot process (bad axis, shape, range or dtype)."""


class NonFiniteError(KernelError):
    """A tensor holds NaN or ±Inf where a statistic or range needs finite values.

    Attributes:
        name: the caller-supplied name of the tensor (e.g. the producing layer's output).
    """

    def __init__(self, name: str, detail: str = "") -> None:
        self.name = name
        msg = f"tensor {name!r} contains NaN or Inf values"
        super().__init__(f"{msg}: {detail}" if detail else msg)


class EmptyTensorError(KernelError):
    """A statistic was requested over zero elements (an empty tensor or channel).

    Attributes:
        name: the caller-supplied name of the tensor.
    """

    def __init__(self, name: str, detail: str = "") -> None:
        self.name = name
        msg = f"tensor {name!r} is empty"
        super().__init__(f"{msg}: {detail}" if detail else msg)


class CalibrationDataError(OvqError):
    """Calibration data cannot be read or does not fit the model's inputs.

    The message names the file (and sample) at fault and the input it was meant for.
    """


class PotConfigError(OvqError):
    """A POT-style JSON config is malformed or asks for something ovq does not support.

    The message names the config file and the offending key (``compression.algorithms[0]``).
    """


class OptionError(OvqError, ValueError):
    """An option of an ovq API call or CLI command has a value ovq cannot use.

    The message names the option (``overflow_fix``, ``--smooth-quant``) and the valid values.
    """


class InferenceError(OvqError):
    """OpenVINO could not compile or run a model ovq built or was given.

    The message gives OpenVINO's informative line and, for calibration, the sample at fault.
    """


class ObservationError(OvqError):
    """A tensor the calibration pass is asked to observe cannot be observed in the model.

    No op has the given name, the op has no such output, or a per-channel statistic is
    asked of a tensor whose rank is dynamic. The message names the op and the output.
    """


class RewriteError(OvqError):
    """A set of rewrite rules did not converge: it kept rewriting past its bound.

    The message names the rules and the last rewrite made; typically two rules undo
    each other, or a rule's ``check`` accepts the graph its own ``rewrite`` produces.
    """


class AlreadyQuantizedError(OvqError):
    """A model given to quantize is already quantized (FakeQuantize ops or compressed
    low-precision weights); quantize its floating-point original instead."""


class ManifestError(OvqError):
    """An ``ovq batch`` manifest is malformed or asks for something ovq cannot do.

    The message names the manifest file, the line (where it can be found) and the field:
    ``batch.toml:12: job[2].subset_size: ...``.
    """


class BatchError(OvqError):
    """An ``ovq batch`` run cannot start or go on: an unwritable output folder, another
    run holding the same output folder, a Ray cluster that does not answer."""
