"""Embedding input preprocessing (mean, scale, channel reversal, layout, batch) in a model.

The work is done by the ``embed-preprocessing`` pass (one instance per input); this
module holds its public Python entry point, :func:`embed_preprocessing`, the function
behind ``ovq preprocess`` (:func:`preprocess_cli`), the parsers of Model Optimizer
style option strings, the input queries the pass and the CLI share (:func:`find_input`,
:func:`channel_axis`), and :class:`PreprocessingError`.

Semantics are Model Optimizer's: per input, whatever the option order,
``x' = (reverse_channels(x) - mean) / scale`` per channel, with mean and scale values
given in the *model's* channel order (see ``docs/preprocessing.md``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ovq.errors import OvqError

if TYPE_CHECKING:
    import openvino as ov

    from ovq.ir.graph import Graph

__all__ = [
    "PreprocessingError",
    "channel_axis",
    "embed_preprocessing",
    "find_input",
    "format_shape",
    "input_label",
    "input_layout",
    "input_shape",
    "parse_layout",
    "parse_mo_layouts",
    "parse_mo_values",
    "preprocess_cli",
]

PASS_NAME = "embed-preprocessing"
_OPTIONS = ("mean", "scale", "reverse_channels", "layout", "batch")


class PreprocessingError(OvqError):
    """Preprocessing cannot be embedded as asked.

    Raised for an unknown input name, a wrong number of mean/scale values, a missing or
    ambiguous channel dimension, a non-positive scale, a bad layout or batch, or an
    unparsable option string. The message names the input and the problem.
    """


def parse_layout(text: str) -> tuple[str, ...]:
    """Split a layout into one upper-case label per dimension.

    Accepts ``NCHW``, ``nhwc``, ``N?HW`` and OpenVINO's bracketed form ``[N,C,H,W]``
    (labels may then be longer than one letter). ``?`` marks an unnamed dimension.

    Raises:
        PreprocessingError: empty text, ``...`` (partial layouts are not supported),
            or a label used twice.
    """
    raw = text.strip()
    if raw.startswith("[") and raw.endswith("]"):
        labels = tuple(p.strip().upper() for p in raw[1:-1].split(","))
    else:
        labels = tuple(raw.upper())
    if not raw or "..." in raw or any(not lab or not re.fullmatch(r"[A-Z_?][A-Z0-9_?]*", lab) for lab in labels):
        raise PreprocessingError(f"layout {text!r}: expected letters per dimension, like NCHW or [N,C,H,W]")
    named = [lab for lab in labels if lab != "?"]
    if len(named) != len(set(named)):
        raise PreprocessingError(f"layout {text!r}: a dimension label appears twice")
    return labels


# ----------------------------------------------------------------------------- model inputs
# Queries shared by ``ovq preprocess`` and the embed-preprocessing pass: which Parameter
# an option names, and where its channel dimension is.

# Where Model Optimizer looks for a channel dimension when no layout is given (by rank).
_CHANNEL_CANDIDATES = {3: (0, 2), 4: (1, 3), 5: (1, 4)}


def find_input(graph: Graph, name: str) -> int:
    """The Parameter named ``name``: a tensor name of its output, else its friendly name.

    An empty ``name`` means the only input of a single-input model.

    Raises:
        PreprocessingError: no such input (the message lists the valid names), or no
            name given for a model with several inputs.
    """
    params = graph.parameters()
    if not name:
        if len(params) == 1:
            return params[0]
        raise PreprocessingError(
            f"the model has {len(params)} inputs; name one with input= (inputs: {_describe_inputs(graph)})"
        )
    by_tensor = [p for p in params if name in graph.op(p).outputs[0].names]
    if by_tensor:
        return by_tensor[0]
    by_name = [p for p in params if graph.op(p).name == name]
    if len(by_name) == 1:
        return by_name[0]
    raise PreprocessingError(f"unknown input {name!r}; inputs: {_describe_inputs(graph)}")


def channel_axis(
    graph: Graph,
    param: int,
    *,
    mean: tuple[float, ...] = (),
    scale: tuple[float, ...] = (),
    reverse_channels: bool = False,
    layout: str = "",
) -> tuple[int | None, int | None]:
    """``(axis, static size or None)`` of the channel dimension of input ``param``.

    ``(None, None)`` when nothing needs a channel axis (only scalar ``mean``/``scale``,
    no reversal). The axis comes from ``layout``, else the Parameter's recorded layout,
    else Model Optimizer's guess: the one dimension at a channel position (rank 3: 0/2,
    rank 4: 1/3, rank 5: 1/4) whose size equals the number of values (3 for a reversal
    without per-channel values).

    Raises:
        PreprocessingError: missing or ambiguous channel dimension, a layout of the
            wrong rank or without ``C``, or a value count that does not match.
    """
    label = input_label(graph, param)
    shape = input_shape(graph, param)
    count = max(len(mean), len(scale))
    layout_text = layout or input_layout(graph, param)
    needs_axis = reverse_channels or count > 1
    if not needs_axis and not layout_text:
        return None, None
    if layout_text:
        try:
            labels = parse_layout(layout_text)
        except PreprocessingError as exc:
            raise PreprocessingError(f"input {label!r}: {exc}") from None
        if shape is not None and len(labels) != len(shape):
            raise PreprocessingError(
                f"input {label!r}: layout {layout_text!r} has {len(labels)} dimensions, "
                f"the input has {len(shape)} ({format_shape(shape)})"
            )
        if "C" not in labels:
            if not needs_axis:
                return None, None
            raise PreprocessingError(
                f"input {label!r}: layout {layout_text!r} has no channel dimension C"
            )
        axis = labels.index("C")
    else:
        if shape is None:
            raise PreprocessingError(f"input {label!r}: dynamic rank; give a layout with C")
        wanted = count if count > 1 else 3
        candidates = [i for i in _CHANNEL_CANDIDATES.get(len(shape), ()) if shape[i] == wanted]
        if not candidates:
            raise PreprocessingError(
                f"input {label!r}: no channel dimension of size {wanted} in {format_shape(shape)}; "
                "give a layout such as NCHW or NHWC"
            )
        if len(candidates) > 1:
            raise PreprocessingError(
                f"input {label!r}: ambiguous channel dimension in {format_shape(shape)} "
                f"(dimensions {candidates} both have size {wanted}); give a layout such as NCHW or NHWC"
            )
        axis = candidates[0]
    size = None if shape is None or shape[axis] < 0 else shape[axis]
    for key, values in (("mean", mean), ("scale", scale)):
        if len(values) > 1 and size is not None and len(values) != size:
            raise PreprocessingError(
                f"input {label!r}: {len(values)} {key} values for {size} channels "
                f"(dimension {axis} of {format_shape(shape)}); give 1 or {size}"
            )
    if reverse_channels and size is None:
        raise PreprocessingError(
            f"input {label!r}: cannot reverse a channel dimension of unknown size ({format_shape(shape)})"
        )
    return axis, size


def input_label(graph: Graph, param: int) -> str:
    """The name messages use for input ``param``: its first tensor name, else its friendly name."""
    op = graph.op(param)
    names = sorted(op.outputs[0].names) if op.outputs else []
    return names[0] if names else op.name


def input_shape(graph: Graph, param: int) -> list[int] | None:
    """The Parameter's declared shape (-1 for dynamic dims), None for a dynamic rank."""
    text = (graph.op(param).attrs or {}).get("shape", "")
    if text.strip() in ("...", "?"):
        return None
    dims = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            dims.append(int(part))
        except ValueError:
            dims.append(-1)  # "?" or a range like "1..10"
    return dims


def input_layout(graph: Graph, param: int) -> str:
    """The layout recorded on the Parameter's output port (``[N,C,H,W]``), or ``""``."""
    for extra in graph.op(param).outputs[0].extra:
        if extra.tag == "rt_info":
            for attr in extra:
                if attr.get("name") == "layout" and attr.get("layout"):
                    return attr.get("layout", "")
    return ""


def format_shape(shape: list[int] | None) -> str:
    """``[1,3,?,?]`` for a shape from :func:`input_shape` (``[...]`` for a dynamic rank)."""
    return "[...]" if shape is None else "[" + ",".join("?" if d < 0 else str(d) for d in shape) + "]"


def _describe_inputs(graph: Graph) -> str:
    parts = []
    for p in graph.parameters():
        op = graph.op(p)
        names = sorted(op.outputs[0].names)
        aka = f" (tensor names {', '.join(names)})" if names and names != [op.name] else ""
        parts.append(f"{op.name!r}{aka}")
    return ", ".join(parts) or "none"


def embed_preprocessing(
    model: ov.Model | Graph | str | os.PathLike[str],
    *,
    inputs: Mapping[str, Mapping[str, Any]] | None = None,
    output: str | os.PathLike[str] | None = None,
    **single_input_options: Any,
) -> Any:
    """Embed preprocessing into a model; return the same kind of thing as given.

    Either ``inputs`` maps input names (tensor name or Parameter friendly name) to
    option dicts, or the options are given as keywords for one input::

        ovq.embed_preprocessing(model, mean=(123.675, 116.28, 103.53),
                                scale=(58.395, 57.12, 57.375), reverse_channels=True)
        ovq.embed_preprocessing(model, inputs={"image": {"mean": (127.5,), "layout": "NHWC"},
                                               "mask": {"scale": (255.0,)}})

    Options (per input): ``mean``, ``scale`` (a number or a sequence: one value for all
    channels or one per channel), ``reverse_channels`` (bool), ``layout`` (``NCHW``...),
    ``batch`` (int, 0 keeps the batch dimension); with keywords also ``input``.

    Args:
        model: An ``openvino.Model`` (a new Model is returned), an :class:`ovq.Graph`
            (edited in place and returned) or a model path (the edited Graph is returned,
            or the written ``.xml`` path when ``output`` is given).
        inputs: Options per input name.
        output: Write the result as IR here.
        **single_input_options: Options for a single input.

    Raises:
        PreprocessingError: bad options (see the class), or both ``inputs`` and keywords.
            Options the model rejects are found while the pass runs: the error is then
            also a :class:`~ovq.pipeline.PassError` whose message names the pass.
    """
    from ovq.pipeline import get_pass, run_pipeline

    if inputs is not None and single_input_options:
        raise PreprocessingError("give either inputs={name: options} or keyword options for one input, not both")
    if inputs is None:
        per_input = {str(single_input_options.pop("input", "")): dict(single_input_options)}
    else:
        per_input = {str(name): dict(opts) for name, opts in inputs.items()}
    cls = get_pass(PASS_NAME)
    passes = []
    for name, opts in per_input.items():
        unknown = sorted(set(opts) - set(_OPTIONS))
        if unknown:
            raise PreprocessingError(
                f"input {name!r}: unknown option(s) {', '.join(unknown)} (options: {', '.join(_OPTIONS)})"
            )
        for key in ("mean", "scale"):
            if key in opts:
                opts[key] = _as_floats(opts[key], name, key)
        try:
            passes.append(cls(input=name, **opts))
        except (TypeError, ValueError) as exc:
            raise PreprocessingError(f"input {name!r}: {exc}") from None
    return run_pipeline(model, passes, output=output)


def _as_floats(value: Any, name: str, key: str) -> tuple[float, ...]:
    if isinstance(value, (int, float)):
        return (float(value),)
    try:
        return tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise PreprocessingError(f"input {name!r}: {key} must be a number or a sequence of numbers, got {value!r}") from None


# ----------------------------------------------------------------------------- MO-style options

def parse_mo_values(text: str, option: str = "--mean-values") -> dict[str, tuple[float, ...]]:
    """Parse ``"image[123.675,116.28,103.53],other[0.5]"`` or ``"[123,117,104]"``.

    Values inside brackets are separated by commas or spaces. A group without a name
    applies to the only input and is keyed by ``""``.

    Raises:
        PreprocessingError: unbalanced brackets, a non-number, an empty group, or the
            same input twice.
    """
    groups = _split_groups(text, "[", "]", option)
    out: dict[str, tuple[float, ...]] = {}
    for name, body in groups:
        parts = [p for p in re.split(r"[,\s]+", body.strip()) if p]
        if not parts:
            raise PreprocessingError(f"{option} {text!r}: no values for {name or 'the input'!r}")
        try:
            values = tuple(float(p) for p in parts)
        except ValueError:
            raise PreprocessingError(f"{option} {text!r}: {body!r} is not a list of numbers") from None
        if name in out:
            raise PreprocessingError(f"{option} {text!r}: input {name!r} given twice")
        out[name] = values
    return out


def parse_mo_layouts(text: str, option: str = "--layout") -> dict[str, str]:
    """Parse ``"image(nchw),other(nhwc)"`` or ``"nchw"``; a bare layout is keyed by ``""``.

    Raises:
        PreprocessingError: unbalanced parentheses, a layout conversion (``nhwc->nchw``,
            not supported), or an invalid layout.
    """
    stripped = text.strip()
    if "(" not in stripped and ")" not in stripped:
        groups = [("", stripped)]
    else:
        groups = _split_groups(stripped, "(", ")", option)
    out: dict[str, str] = {}
    for name, body in groups:
        if "->" in body:
            raise PreprocessingError(
                f"{option} {text!r}: layout conversion {body!r} is not supported (give the model's layout)"
            )
        parse_layout(body)
        if name in out:
            raise PreprocessingError(f"{option} {text!r}: input {name!r} given twice")
        out[name] = body.strip().upper()
    return out


def _split_groups(text: str, open_: str, close: str, option: str) -> list[tuple[str, str]]:
    """``name<open>body<close>`` groups separated by commas (names may contain ``/`` and ``:``)."""
    groups: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in ", \t":
            i += 1
        if i >= n:
            break
        start = text.find(open_, i)
        if start < 0:
            raise PreprocessingError(f"{option} {text!r}: expected {open_!r} after position {i}")
        end = text.find(close, start)
        if end < 0:
            raise PreprocessingError(f"{option} {text!r}: {open_!r} at position {start} is never closed")
        name = text[i:start].strip()
        if close in name or open_ in text[start + 1 : end]:
            raise PreprocessingError(f"{option} {text!r}: unbalanced {open_}{close}")
        groups.append((name, text[start + 1 : end]))
        i = end + 1
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] != ",":
            raise PreprocessingError(f"{option} {text!r}: expected ',' at position {i}")
    if not groups:
        raise PreprocessingError(f"{option} {text!r}: nothing to parse")
    return groups


def preprocess_cli(
    model: str | os.PathLike[str],
    output: str | os.PathLike[str],
    mean_values: str | None = None,
    scale_values: str | None = None,
    reverse_input_channels: bool = False,
    layout: str | None = None,
    batch: int | None = None,
) -> Path:
    """What ``ovq preprocess MODEL ... -o OUT.xml`` does; return the written ``.xml`` path.

    Option strings follow Model Optimizer: ``mean_values="image[123.675,116.28,103.53]"``
    or ``"[123,117,104]"`` (no name: the only input), likewise ``scale_values``;
    ``layout="image(nchw),other(nhwc)"`` or ``"nchw"``; ``batch`` sets the batch of every
    input. ``reverse_input_channels`` applies, as in Model Optimizer, to every input
    with a 3-channel dimension (found through its layout or inferred); it is an error
    when no input has one.

    Raises:
        PreprocessingError: a bad option string or option (see :class:`PreprocessingError`).
        IRError: the model cannot be read or the output cannot be written.
    """
    from ovq.ir import read_model

    graph = read_model(model)
    means = parse_mo_values(mean_values, "--mean-values") if mean_values else {}
    scales = parse_mo_values(scale_values, "--scale-values") if scale_values else {}
    layouts = parse_mo_layouts(layout, "--layout") if layout else {}
    if batch is not None and batch < 1:
        raise PreprocessingError(f"--batch {batch}: must be a positive integer")

    # Key every option by one label per Parameter, whichever of its names was used.
    per_input: dict[str, dict[str, Any]] = {}
    labels = {p: input_label(graph, p) for p in graph.parameters()}
    for key, table in (("mean", means), ("scale", scales), ("layout", layouts)):
        for name, value in table.items():
            label = labels[find_input(graph, name)] if name or len(labels) == 1 else name
            per_input.setdefault(label, {})[key] = value
    if "" in per_input and len(graph.parameters()) != 1:
        raise PreprocessingError(
            f"the model has {len(graph.parameters())} inputs: name the input, like "
            f"'{input_label(graph, graph.parameters()[0]) if graph.parameters() else 'input'}[...]'"
        )
    if batch or reverse_input_channels:
        # Batch (and channel reversal, below) concern every input: name them all.
        for label in labels.values():
            per_input.setdefault(label, {})
    if batch:
        for opts in per_input.values():
            opts["batch"] = batch
    if reverse_input_channels:
        _mark_reversible(graph, per_input)
    embed_preprocessing(graph, inputs=per_input)
    from ovq.ir import save_model

    return save_model(graph, output)


def _mark_reversible(graph: Graph, per_input: dict[str, dict[str, Any]]) -> None:
    """Turn on ``reverse_channels`` for every input with a 3-channel dimension (MO rule)."""
    chosen = []
    for name, opts in per_input.items():
        try:
            _, size = channel_axis(graph, find_input(graph, name), reverse_channels=True,
                                   layout=opts.get("layout", ""))
        except PreprocessingError:
            continue
        if size == 3 or (size is None and opts.get("layout")):
            opts["reverse_channels"] = True
            chosen.append(name)
    if not chosen:
        raise PreprocessingError(
            "--reverse-input-channels: no input has a 3-channel dimension "
            "(give --layout with C for inputs whose channel dimension is dynamic)"
        )
