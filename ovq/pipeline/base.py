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
    """A pass failed, or a pipeline names an unknown pass or a bad option.

    A pipeline raises it when a pass fails with an exception that is not an
    :class:`OvqError` (a bug in the pass, kept as ``__cause__``) or leaves the graph
    invalid. An :class:`OvqError` raised inside a pass reaches the caller as itself,
    so its class still tells what failed, with :class:`PassError` added to its class
    and the pass named in its message (see :func:`in_pass`): ``except
    PreprocessingError`` and ``except PassError`` both catch it.

    Attributes:
        pass_name: The pass that failed, or ``None`` for errors raised outside a run
            (registration, textual pipelines).
        passes_before: Specs of the passes that ran before it.
    """

    pass_name: str | None = None
    passes_before: tuple[str, ...] = ()

    def __init__(self, *args: object, pass_name: str | None = None, passes_before: Sequence[str] = ()) -> None:
        super().__init__(*args)
        if pass_name is not None:
            self.pass_name = pass_name
            self.passes_before = tuple(passes_before)


_IN_PASS: dict[type[OvqError], type[PassError]] = {}


def _in_pass_class(cls: type[OvqError]) -> type[PassError]:
    """``cls`` with :class:`PassError` mixed in and the pass named in ``str()``; same name."""
    combined = _IN_PASS.get(cls)
    if combined is None:
        own_str = cls.__str__

        def __str__(self: PassError) -> str:
            return f"pass {self.pass_name!r} failed after {list(self.passes_before)}: {own_str(self)}"

        def __reduce__(self: PassError) -> tuple[Any, ...]:
            return cls, self.args, self.__dict__  # unpickles as the original class

        bases = (cls,) if issubclass(cls, PassError) else (cls, PassError)
        combined = type(cls.__name__, bases, {
            "__module__": cls.__module__, "__qualname__": cls.__qualname__, "__doc__": cls.__doc__,
            "__str__": __str__, "__reduce__": __reduce__,
        })
        _IN_PASS[cls] = combined
    return combined


def in_pass(exc: OvqError, pass_name: str, passes_before: Sequence[str]) -> OvqError:
    """Name the failing pass on an :class:`OvqError` raised inside it; return what to raise.

    The exception itself is returned, now also an instance of :class:`PassError` with
    ``pass_name`` and ``passes_before`` set and its message prefixed with
    ``pass 'NAME' failed after [...]:``. An exception that already names a pass (it
    came out of a pipeline run inside this pass) keeps that and gets a note naming this
    one. Should the class not be extensible, a new :class:`PassError` is returned, to be
    raised ``from exc``.
    """
    if isinstance(exc, PassError) and exc.pass_name is not None:
        exc.add_note(f"in pass {pass_name!r}, after {list(passes_before)}")
        return exc
    try:
        exc.__class__ = _in_pass_class(type(exc))
    except TypeError:  # e.g. a layout that differs from its bases' (__slots__)
        return PassError(f"pass {pass_name!r} failed after {list(passes_before)}: {exc}",
                         pass_name=pass_name, passes_before=passes_before)
    error = typing.cast(PassError, exc)
    error.pass_name = pass_name
    error.passes_before = tuple(passes_before)
    return error


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
