"""The networkx mirror of an OpenVINO model.

A :class:`Graph` wraps a :class:`networkx.MultiDiGraph` whose nodes are the IR layer
ids and carry an :class:`Op` under the ``"op"`` attribute. An edge ``u → v`` with key
``(out_index, in_index)`` connects output ``out_index`` of ``u`` to input ``in_index``
of ``v`` (indices count the layer's ``<output>``/``<input>`` ports in order, not IR port
ids, which :class:`Port` keeps for a lossless write).

Everything the IR holds is kept: unknown op types and attributes, rt_info (raw XML
elements, written back verbatim), port tensor names and layouts, layer-level attributes
such as Result ``output_names``, sub-graph bodies (as nested :class:`Graph` objects)
and their port maps. Passes edit the graph only through the methods here, which keep
edges and ports consistent; :meth:`Graph.verify` checks the invariants.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from xml.etree.ElementTree import Element

import networkx as nx
import numpy as np

from ovq.errors import GraphError
from ovq.ir.constants import BinFile, ConstData

if TYPE_CHECKING:
    import openvino as ov

# IR type names that differ from OpenVINO's op type names (serializer translate_type_name).
IR_TO_OV_TYPE = {"Const": "Constant", "ReLU": "Relu", "PReLU": "PRelu", "SoftMax": "Softmax"}
OV_TO_IR_TYPE = {v: k for k, v in IR_TO_OV_TYPE.items()}

# Child elements of <layer> that hold sub-graph bodies.
BODY_TAGS = ("body", "then_body", "else_body")


@dataclass(eq=False, slots=True)
class Port:
    """One input or output port of an op.

    Attributes:
        id: IR port id (inputs usually 0..n-1, outputs continue; kept as read).
        precision: Upper-case element type (``FP32``), informational except on I/O.
        shape: Dimensions (-1 for dynamic) or ``None`` when not recorded.
        names: Tensor names of an output port (always empty on inputs).
        attrs: Any other ``<port>`` attributes, kept verbatim.
        extra: Other child elements (e.g. ``<rt_info>`` with a layout), kept verbatim.
    """

    id: int
    precision: str | None = None
    shape: list[int] | None = None
    names: list[str] = field(default_factory=list)
    attrs: dict[str, str] = field(default_factory=dict)
    extra: list[Element] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class Op:
    """One IR layer.

    Attributes:
        type: IR type name as written in the file (``Const``, ``ReLU``, ``Convolution``).
        version: Opset the layer names (``opset1``) or an extension's domain.
        name: Friendly name.
        attrs: ``<data>`` attributes in file order; ``None`` if the layer has no ``<data>``.
        inputs: Input ports in order.
        outputs: Output ports in order.
        layer_attrs: Extra ``<layer>`` attributes (``output_names``, ``PrimitivesPriority``).
        rt_info: The layer's raw ``<rt_info>`` element, or ``None``.
        extras: Other child elements (``port_map``, ``back_edges``, ...), kept verbatim.
        bodies: Nested graphs of sub-graph ops, by tag (``body``, ``then_body``, ...).
        child_order: Tags of the layer's children as read, to write them back in order.
        const: The payload of a Const layer.
    """

    type: str
    version: str
    name: str
    attrs: dict[str, str] | None = None
    inputs: list[Port] = field(default_factory=list)
    outputs: list[Port] = field(default_factory=list)
    layer_attrs: dict[str, str] = field(default_factory=dict)
    rt_info: Element | None = None
    extras: list[Element] = field(default_factory=list)
    bodies: dict[str, Graph] = field(default_factory=dict)
    child_order: tuple[str, ...] = ()
    const: ConstData | None = None

    @property
    def ov_type(self) -> str:
        """The OpenVINO op type name (``Constant`` for IR ``Const``)."""
        return IR_TO_OV_TYPE.get(self.type, self.type)

    @property
    def is_const(self) -> bool:
        """True for Const layers."""
        return self.type == "Const"


def canonical_ir_type(type_name: str) -> str:
    """IR spelling of an op type given either spelling (``Constant`` → ``Const``)."""
    return OV_TO_IR_TYPE.get(type_name, type_name)


class Graph:
    """A mutable mirror of one OpenVINO model (or one sub-graph body).

    Attributes:
        nx: The underlying ``networkx.MultiDiGraph`` (read it freely; edit through
            the methods of this class).
        name: The model name (``<net name>``).
        ir_version: IR version the graph was read from (written back as 11).
        rt_info: Model-level ``<rt_info>`` element, or ``None``.
        source: Where the graph came from, for messages.
        revision: Incremented by every edit made through this class; a pass changed
            the graph exactly when the revision moved.
        shapes_revision: The revision at which every port's shape and precision were
            last set by OpenVINO's inference (:meth:`infer_shapes`, or mirroring an
            ``openvino.Model``); ``None`` if never.
    """

    def __init__(self, name: str = "model", *, source: str = "<memory>") -> None:
        self.nx: nx.MultiDiGraph = nx.MultiDiGraph()
        self.name = name
        self.ir_version = 11
        self.net_attrs: dict[str, str] = {}
        self.rt_info: Element | None = None
        self.source = source
        self.meta: dict[str, Any] = {}
        self._bins: list[BinFile] = []
        self._next_id = 0
        self.revision = 0
        self.shapes_revision: int | None = None

    # ------------------------------------------------------------------ nodes
    def __len__(self) -> int:
        return self.nx.number_of_nodes()

    def __contains__(self, node: object) -> bool:
        return node in self.nx

    def __repr__(self) -> str:
        return f"<ovq.Graph {self.name!r}: {len(self)} ops from {self.source}>"

    def op(self, node: int) -> Op:
        """The :class:`Op` of ``node``.

        Raises:
            GraphError: ``node`` is not in the graph.
        """
        try:
            return self.nx.nodes[node]["op"]
        except KeyError:
            raise GraphError(f"{self.source}: no layer with id {node}") from None

    def nodes(self) -> list[int]:
        """Node ids in insertion order (file order for a graph just read)."""
        return list(self.nx.nodes)

    def ops(self) -> Iterator[tuple[int, Op]]:
        """``(node, op)`` pairs in insertion order (a snapshot; safe to edit after)."""
        return iter([(n, d["op"]) for n, d in self.nx.nodes(data=True)])

    def find(self, name: str) -> int:
        """The node whose friendly name is ``name``.

        Raises:
            GraphError: no such layer, or more than one.
        """
        hits = [n for n, op in self.ops() if op.name == name]
        if len(hits) != 1:
            what = "no layer" if not hits else f"{len(hits)} layers"
            raise GraphError(f"{self.source}: {what} named {name!r}")
        return hits[0]

    def nodes_of_type(self, *types: str) -> list[int]:
        """Nodes whose op type is one of ``types`` (IR or OpenVINO spelling)."""
        wanted = {canonical_ir_type(t) for t in types}
        return [n for n, op in self.ops() if op.type in wanted]

    def parameters(self) -> list[int]:
        """Parameter nodes in insertion order."""
        return self.nodes_of_type("Parameter")

    def results(self) -> list[int]:
        """Result nodes in insertion order."""
        return self.nodes_of_type("Result")

    def topological_order(self) -> list[int]:
        """Node ids producers-first, ties broken by insertion order (deterministic).

        Raises:
            GraphError: the graph has a cycle.
        """
        rank = {n: i for i, n in enumerate(self.nx.nodes)}
        try:
            return list(nx.lexicographical_topological_sort(self.nx, key=rank.__getitem__))
        except nx.NetworkXUnfeasible:
            cycle = nx.find_cycle(self.nx)
            names = " -> ".join(self.op(u).name for u, *_ in cycle)
            raise GraphError(f"{self.source}: graph has a cycle: {names}") from None

    def new_id(self) -> int:
        """A layer id not used in this graph."""
        while self._next_id in self.nx:
            self._next_id += 1
        return self._next_id

    def add_op(
        self,
        type: str,
        name: str,
        *,
        version: str = "opset1",
        attrs: dict[str, Any] | None = None,
        num_inputs: int = 0,
        outputs: Iterable[Port] | int = 1,
        node_id: int | None = None,
        rt_info: Element | None = None,
    ) -> int:
        """Add an op with canonical port ids and return its node id.

        Args:
            type: IR or OpenVINO type name (stored in IR spelling).
            name: Friendly name.
            version: Opset of the op.
            attrs: ``<data>`` attributes (values converted with ``str``); ``None`` for
                ops without attributes.
            num_inputs: Number of input ports.
            outputs: Number of output ports, or the :class:`Port` objects themselves.
            node_id: Layer id to use (default: a fresh one).
            rt_info: Raw ``<rt_info>`` element.
        """
        node = self.new_id() if node_id is None else node_id
        if node in self.nx:
            raise GraphError(f"{self.source}: layer id {node} already exists")
        inputs = [Port(id=i) for i in range(num_inputs)]
        if isinstance(outputs, int):
            out_ports = [Port(id=num_inputs + k) for k in range(outputs)]
        else:
            out_ports = list(outputs)
            for k, port in enumerate(out_ports):
                port.id = num_inputs + k
        op = Op(
            type=canonical_ir_type(type),
            version=version,
            name=name,
            attrs=None if attrs is None else {k: _attr_str(v) for k, v in attrs.items()},
            inputs=inputs,
            outputs=out_ports,
            rt_info=rt_info,
        )
        self._insert(node, op)
        return node

    def _insert(self, node: int, op: Op) -> None:
        self.nx.add_node(node, op=op)
        self.revision += 1

    def add_const(self, values: np.ndarray | list, name: str, *, element_type: str | None = None) -> int:
        """Add a Const holding ``values`` and return its node id."""
        data = ConstData.from_array(values, element_type)
        node = self.add_op(
            "Const",
            name,
            attrs={"element_type": data.element_type.name, "shape": "", "offset": 0, "size": data.size},
            outputs=[Port(id=0)],
        )
        self._store_const(node, data)
        return node

    def add_const_data(self, data: ConstData, name: str) -> int:
        """Add a Const holding an existing payload (e.g. a view onto a scratch ``.bin``)."""
        node = self.add_op(
            "Const",
            name,
            attrs={"element_type": data.element_type.name, "shape": "", "offset": 0, "size": data.size},
            outputs=[Port(id=0)],
        )
        self._store_const(node, data)
        return node

    def remove_node(self, node: int) -> None:
        """Remove ``node`` and every edge touching it."""
        self.op(node)
        self.nx.remove_node(node)
        self.revision += 1

    # ------------------------------------------------------------------ edges
    def _check_out(self, node: int, out_index: int) -> None:
        n = len(self.op(node).outputs)
        if not 0 <= out_index < n:
            raise GraphError(f"{self.source}: layer {self.op(node).name!r} has no output {out_index} ({n} outputs)")

    def _check_in(self, node: int, in_index: int) -> None:
        n = len(self.op(node).inputs)
        if not 0 <= in_index < n:
            raise GraphError(f"{self.source}: layer {self.op(node).name!r} has no input {in_index} ({n} inputs)")

    def connect(self, src: int, out_index: int, dst: int, in_index: int) -> None:
        """Connect output ``out_index`` of ``src`` to input ``in_index`` of ``dst``.

        Raises:
            GraphError: a port is out of range or the input is already connected.
        """
        self._check_out(src, out_index)
        self._check_in(dst, in_index)
        if self.producer(dst, in_index) is not None:
            raise GraphError(
                f"{self.source}: input {in_index} of layer {self.op(dst).name!r} is already connected"
            )
        self.nx.add_edge(src, dst, key=(out_index, in_index))
        self.revision += 1

    def disconnect(self, dst: int, in_index: int) -> tuple[int, int] | None:
        """Remove the edge into input ``in_index`` of ``dst``; return the old producer."""
        prod = self.producer(dst, in_index)
        if prod is not None:
            self.nx.remove_edge(prod[0], dst, key=(prod[1], in_index))
            self.revision += 1
        return prod

    def producer(self, node: int, in_index: int) -> tuple[int, int] | None:
        """``(node, out_index)`` feeding input ``in_index`` of ``node``, or ``None``."""
        for src, _dst, key in self.nx.in_edges(node, keys=True):
            if key[1] == in_index:
                return src, key[0]
        return None

    def inputs_of(self, node: int) -> list[tuple[int, int] | None]:
        """The producer of every input of ``node``, in input order."""
        found: list[tuple[int, int] | None] = [None] * len(self.op(node).inputs)
        for src, _dst, (out_i, in_i) in self.nx.in_edges(node, keys=True):
            if 0 <= in_i < len(found):
                found[in_i] = (src, out_i)
        return found

    def consumers(self, node: int, out_index: int = 0) -> list[tuple[int, int]]:
        """``(node, in_index)`` of every consumer of output ``out_index`` of ``node``."""
        return sorted(
            (dst, key[1]) for _src, dst, key in self.nx.out_edges(node, keys=True) if key[0] == out_index
        )

    def insert_on_edge(
        self, src: int, out_index: int, dst: int, in_index: int, new: int, *, new_in: int = 0, new_out: int = 0
    ) -> None:
        """Route the edge ``src:out_index → dst:in_index`` through ``new``.

        Afterwards ``src:out_index → new:new_in`` and ``new:new_out → dst:in_index``.
        """
        if self.producer(dst, in_index) != (src, out_index):
            raise GraphError(
                f"{self.source}: no edge {self.op(src).name!r}:{out_index} -> {self.op(dst).name!r}:{in_index}"
            )
        self.disconnect(dst, in_index)
        if self.producer(new, new_in) is None:
            self.connect(src, out_index, new, new_in)
        self.connect(new, new_out, dst, in_index)

    def replace_output(self, old: int, old_out: int, new: int, new_out: int, *, move_names: bool = True) -> None:
        """Make every consumer of ``old:old_out`` read ``new:new_out`` instead.

        With ``move_names`` the tensor names of the old output move to the new one, so
        the model keeps its named outputs. Consumers that are ``new`` itself are left
        alone (so ``new`` may consume ``old``).
        """
        self._check_out(old, old_out)
        self._check_out(new, new_out)
        for dst, in_index in self.consumers(old, old_out):
            if dst == new:
                continue
            self.nx.remove_edge(old, dst, key=(old_out, in_index))
            self.nx.add_edge(new, dst, key=(new_out, in_index))
            self.revision += 1
        if move_names:
            old_port, new_port = self.op(old).outputs[old_out], self.op(new).outputs[new_out]
            if old_port.names:
                for tensor_name in old_port.names:
                    if tensor_name not in new_port.names:
                        new_port.names.append(tensor_name)
                old_port.names = []
                self.revision += 1

    def remove_dead_nodes(self) -> list[int]:
        """Remove every op that no Result or sink reaches; return the removed ids.

        Sinks are ops with no outputs (Result, Assign and other side-effect ops);
        Parameters are kept even when unused, since they define the model's inputs.
        """
        sinks = [n for n, op in self.ops() if not op.outputs]
        live: set[int] = set(sinks)
        for sink in sinks:
            live |= nx.ancestors(self.nx, sink)
        dead = [n for n, op in self.ops() if n not in live and op.type != "Parameter"]
        self.nx.remove_nodes_from(dead)
        if dead:
            self.revision += 1
        return dead

    def set_attrs(self, node: int, **attrs: Any) -> None:
        """Set ``<data>`` attributes of ``node`` (values converted like :meth:`add_op`).

        Use this (or :meth:`touch` after editing an :class:`Op` in place) so that the
        change is recorded in :attr:`revision`, which passes report as "modified".
        """
        op = self.op(node)
        current = op.attrs if op.attrs is not None else {}
        for key, value in attrs.items():
            current[key] = _attr_str(value)
        op.attrs = current
        self.revision += 1

    def touch(self, node: int) -> None:
        """Record that ``node``'s op was edited in place (bumps :attr:`revision`)."""
        self.op(node)
        self.revision += 1

    # -------------------------------------------------------------- constants
    def const_data(self, node: int) -> ConstData:
        """The :class:`ConstData` of a Const node.

        Raises:
            GraphError: ``node`` is not a Const.
        """
        op = self.op(node)
        if op.const is None:
            raise GraphError(f"{self.source}: layer {op.name!r} ({op.type}) is not a Const")
        return op.const

    def const_value(self, node: int) -> np.ndarray:
        """The values of a Const node as a read-only array (see :meth:`ConstData.value`)."""
        return self.const_data(node).value()

    def set_const_value(self, node: int, values: np.ndarray | list, *, element_type: str | None = None) -> None:
        """Replace the values of a Const node (its element type follows ``values``).

        The old payload (possibly a view onto the source ``.bin``) is left untouched.
        """
        self.const_data(node)
        self._store_const(node, ConstData.from_array(values, element_type))

    def _store_const(self, node: int, data: ConstData) -> None:
        op = self.op(node)
        op.const = data
        self.revision += 1
        attrs = op.attrs if op.attrs is not None else {}
        attrs["element_type"] = data.element_type.name
        attrs["shape"] = ", ".join(str(d) for d in data.shape)
        attrs.setdefault("offset", "0")
        attrs["size"] = str(data.size)
        op.attrs = attrs
        port = op.outputs[0]
        port.precision = data.element_type.precision
        port.shape = list(data.shape)

    # ----------------------------------------------------------------- whole
    def drop_constant_pages(self) -> None:
        """Let the OS reclaim the pages of memory-mapped ``.bin`` files read so far
        (they are read back from the page cache when a constant is next used)."""
        for bin_file in self._bins:
            bin_file.drop_pages()

    def copy(self) -> Graph:
        """A deep copy that shares (read-only) file-backed constant payloads."""
        clone = Graph(self.name, source=self.source)
        clone.ir_version = self.ir_version
        clone.net_attrs = dict(self.net_attrs)
        clone.rt_info = copy.deepcopy(self.rt_info)
        clone.meta = dict(self.meta)
        clone._bins = list(self._bins)
        for node, op in self.ops():
            clone._insert(node, _copy_op(op))
        clone.nx.add_edges_from(self.nx.edges(keys=True))
        if self.shapes_revision == self.revision:
            clone.shapes_revision = clone.revision
        return clone

    def subgraph(self, nodes: Iterable[int]) -> Graph:
        """A copy of the ops ``nodes`` and the edges among them (same ids and names).

        Inputs fed from outside the set are left unconnected: the caller connects them
        (e.g. to new Parameters) before using the result as a model.
        """
        keep = set(nodes)
        sub = Graph(self.name, source=self.source)
        sub._bins = list(self._bins)
        for node, op in self.ops():
            if node in keep:
                sub._insert(node, _copy_op(op))
        sub.nx.add_edges_from((u, v, k) for u, v, k in self.nx.edges(keys=True) if u in keep and v in keep)
        return sub

    def verify(self) -> None:
        """Check the graph's invariants; raise one error listing every problem.

        Checked: edges name existing ports; every input port has exactly one
        producer; the graph is acyclic; Const payloads match their element type and
        shape and lie inside their file; body graphs likewise.

        Raises:
            VerificationError: with one line per problem.
        """
        from ovq.ir.verify import verify_graph

        verify_graph(self)

    def op_histogram(self) -> dict[str, int]:
        """Count of ops per OpenVINO type, including ops inside bodies."""
        counts: dict[str, int] = {}
        for _node, op in self.walk():
            counts[op.ov_type] = counts.get(op.ov_type, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def walk(self) -> Iterator[tuple[int, Op]]:
        """``(node, op)`` for every op, descending into sub-graph bodies."""
        for node, op in self.ops():
            yield node, op
            for body in op.bodies.values():
                yield from body.walk()

    # --------------------------------------------------------------- openvino
    def to_ov(self) -> ov.Model:
        """Build an ``openvino.Model`` from this graph (through IR v11 in a temp dir)."""
        from ovq.ir.bridge import graph_to_ov

        return graph_to_ov(self)

    def infer_shapes(self, *, force: bool = False) -> None:
        """Set every output port's element type and shape from OpenVINO's inference.

        Skipped when nothing was edited since they were last inferred (see
        :attr:`shapes_revision`) and no port's shape is unknown, unless ``force``: a
        round trip through OpenVINO costs tens of milliseconds (EfficientNet-Lite0:
        0.03-0.05 s of ``ovq.quantize``).
        """
        from ovq.ir.bridge import infer_shapes

        if not force and self.shapes_revision == self.revision and all(
                port.shape is not None for _node, op in self.ops() for port in op.outputs):
            return
        infer_shapes(self)
        self.shapes_revision = self.revision

    @classmethod
    def from_ov(cls, model: ov.Model) -> Graph:
        """Mirror an ``openvino.Model`` (serialized losslessly, weights memory-mapped)."""
        from ovq.ir.bridge import graph_from_ov

        return graph_from_ov(model)


def _attr_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ", ".join(_attr_str(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _copy_op(op: Op) -> Op:
    return Op(
        type=op.type,
        version=op.version,
        name=op.name,
        attrs=None if op.attrs is None else dict(op.attrs),
        inputs=[_copy_port(p) for p in op.inputs],
        outputs=[_copy_port(p) for p in op.outputs],
        layer_attrs=dict(op.layer_attrs),
        rt_info=copy.deepcopy(op.rt_info),
        extras=copy.deepcopy(op.extras),
        bodies={tag: body.copy() for tag, body in op.bodies.items()},
        child_order=op.child_order,
        const=op.const,
    )


def _copy_port(port: Port) -> Port:
    return Port(
        id=port.id,
        precision=port.precision,
        shape=None if port.shape is None else list(port.shape),
        names=list(port.names),
        attrs=dict(port.attrs),
        extra=copy.deepcopy(port.extra),
    )


