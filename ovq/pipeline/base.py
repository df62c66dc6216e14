"""The pass contract and the pass registry.

A pass is a frozen dataclass subclassing :class:`Pass`, with a kebab-case ``name`` and
typed option fields. Calling it on a graph returns a :class:`PassResult` whose
``modified`` flag comes from the graph's edit counter (``Graph.revision``), never from
the pass's own claim. Passes are found by name in a registry filled by the
:func:`register_pass` decorator and, lazily, by the ``ovq.passes`` entry-point group,
which built-in passes use exactly like third-party ones.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ovq.errors import OvqError

if TYPE_CHECKING:
    from ovq.ir.graph import Graph
    from ovq.pipeline.context import PassContext

ENTRY_POINT_GROUP = "ovq.passes"
_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


class PassError(OvqError):
    """A pass failed with an exception that is not an :class:`OvqError` (a bug in the
    pass, kept as ``__cause__``) or left the graph invalid, or a pipeline names an
    unknown pass or a bad option.

    An :class:`OvqError` raised inside a pass is not wrapped: it reaches the caller as
    itself, with :attr:`~ovq.errors.OvqError.pass_name` and ``passes_before`` set and a
    note naming the pass (see :meth:`ovq.pipeline.Pipeline.run`).
    """

    def __init__(self, *args: object, pass_name: str | None = None, passes_before: Sequence[str] = ()) -> None:
        super().__init__(*args)
        if pass_name is not None:
            self.pass_name = pass_name
            self.passes_before = tuple(passes_before)


def note_pass(exc: OvqError, pass_name: str, passes_before: Sequence[str]) -> None:
    """Record on ``exc`` that it was raised inside pass ``pass_name``.

    The innermost pass is kept in ``pass_name``/``passes_before`` (a pipeline run inside
    a pass names its own failing pass); every enclosing pass adds a note.
    """
    if exc.pass_name is None:
        exc.pass_name, exc.passes_before = pass_name, tuple(passes_before)
    exc.add_note(f"in pass {pass_name!r}, after {list(passes_before)}")


@dataclass(frozen=True)
class PassResult:
    """What running one pass produced.

    Attributes:
        graph: The graph after the pass (the same object: passes work in place).
        modified: True exactly when the pass edited the graph.
    """

    graph: Graph
    modified: bool


@dataclass(frozen=True)
class Pass:
    """Base class of every pass.

    Subclasses are ``@dataclass(frozen=True)`` classes with a class attribute ``name``
    (kebab-case) and typed option fields with defaults, and implement :meth:`run`. The
    first line of the docstring is the one-line summary ``ovq passes`` prints; the rest
    says what the pass matches, emits and preserves.
    """

    name: ClassVar[str] = ""

    def run(self, graph: Graph, ctx: PassContext) -> None:
        """Transform ``graph`` in place through its editing methods."""
        raise NotImplementedError

    def __call__(self, graph: Graph, ctx: PassContext | None = None) -> PassResult:
        from ovq.pipeline.context import PassContext

        before = graph.revision
        self.run(graph, ctx or PassContext())
        return PassResult(graph, graph.revision != before)

    @classmethod
    def summary(cls) -> str:
        """First line of the pass's docstring."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    @classmethod
    def option_fields(cls) -> list[dataclasses.Field]:
        """The pass's typed options."""
        return [f for f in dataclasses.fields(cls) if f.init]

    @classmethod
    def from_options(cls, options: dict[str, str]) -> Pass:
        """Build the pass from textual options (``{"mean": "1,2,3"}``), converting types."""
        fields = {f.name: f for f in cls.option_fields()}
        hints = typing.get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        for key, text in options.items():
            attr = key.replace("-", "_")
            if attr not in fields:
                known = ", ".join(sorted(fields)) or "none"
                raise PassError(f"pass {cls.name!r} has no option {key!r} (options: {known})")
            try:
                kwargs[attr] = parse_option(text, hints[attr])
            except ValueError as exc:
                raise PassError(f"pass {cls.name!r}: option {key}={text!r}: {exc}") from None
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise PassError(f"pass {cls.name!r}: {exc}") from None

    def options(self) -> dict[str, Any]:
        """Options that differ from their defaults, in declaration order."""
        values = {}
        for f in self.option_fields():
            value = getattr(self, f.name)
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING
            )
            if value != default:
                values[f.name] = value
        return values

    def spec(self) -> str:
        """Textual form, e.g. ``embed-preprocessing{input=image;mean=1.0,2.0}``."""
        opts = self.options()
        if not opts:
            return self.name
        return self.name + "{" + ";".join(f"{k}={format_option(v)}" for k, v in opts.items()) + "}"


def parse_option(text: str, hint: Any) -> Any:
    """Convert option text to ``hint`` (bool, int, float, str, tuples/lists, Optional)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        non_none = [a for a in args if a is not type(None)]
        if text.strip().lower() in ("none", "") and len(non_none) < len(args):
            return None
        return parse_option(text, non_none[0])
    if origin in (tuple, list):
        item = args[0] if args else str
        parts = [p for p in (x.strip() for x in text.split(",")) if p != ""]
        values = [parse_option(p, item) for p in parts]
        return tuple(values) if origin is tuple else values
    if hint is bool:
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if hint is int:
        return int(text)
    if hint is float:
        return float(text)
    return text


def format_option(value: Any) -> str:
    """Inverse of :func:`parse_option`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ",".join(format_option(v) for v in value)
    if value is None:
        return "none"
    return str(value)


_REGISTRY: dict[str, type[Pass]] = {}
_entry_points_loaded = False


def register_pass(cls: type[Pass]) -> type[Pass]:
    """Class decorator: make ``cls`` available by its ``name`` in pipelines and the CLI.

    Raises:
        PassError: the name is not kebab-case, the class is not a frozen dataclass, or
            another class already took the name.
    """
    if not (isinstance(cls, type) and issubclass(cls, Pass)):
        raise PassError(f"{cls!r} is not a subclass of ovq.pipeline.Pass")
    if not _NAME.match(cls.name or ""):
        raise PassError(f"{cls.__qualname__}: pass name {cls.name!r} must be kebab-case")
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__dataclass_fields__" not in cls.__dict__:
        raise PassError(f"{cls.__qualname__}: a pass must be a @dataclass(frozen=True)")
    existing = _REGISTRY.get(cls.name)
    if existing is not None and existing.__qualname__ != cls.__qualname__:
        raise PassError(f"pass name {cls.name!r} is taken by {existing.__module__}.{existing.__qualname__}")
    _REGISTRY[cls.name] = cls
    return cls


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = ep.load()
        except Exception as exc:  # a broken plugin must not break ovq
            import logging

            logging.getLogger("ovq").warning("cannot load pass plugin %r (%s): %s", ep.name, ep.value, exc)
            continue
        if isinstance(loaded, type) and issubclass(loaded, Pass):
            register_pass(loaded)


def get_pass(name: str) -> type[Pass]:
    """The pass class registered as ``name``.

    Raises:
        PassError: unknown name (the message lists the known ones).
    """
    if name not in _REGISTRY:
        _load_entry_points()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise PassError(f"unknown pass {name!r}; known passes: {known}") from None


def registered_passes() -> dict[str, type[Pass]]:
    """Every registered pass by name (built-ins and plugins), sorted."""
    _load_entry_points()
    return dict(sorted(_REGISTRY.items()))
