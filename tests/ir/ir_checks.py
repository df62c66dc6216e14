"""Assertions shared by the IR round-trip tests."""

from __future__ import annotations

import ovq
from ovq.ir import pairing
from ovq.ir.reader import parse_xml


def canonical_xml(path) -> str:
    """The IR's elements with attributes as parsed (escaping and edge order normalised)."""
    root = parse_xml(path)
    rt_info = root.find("rt_info")
    if rt_info is not None and rt_info.find(pairing.TAG) is not None:
        # The writer's record of the .bin (checked on read, see ovq.ir.pairing), not model content.
        if pairing.strip_record(rt_info) is None:
            root.remove(rt_info)
    for edges in root.iter("edges"):
        edges[:] = sorted(edges, key=lambda e: tuple(int(e.get(k)) for k in ("from-layer", "from-port", "to-layer", "to-port")))
    lines = []
    for elem in root.iter():
        lines.append(f"{elem.tag} {sorted(elem.attrib.items())} {(elem.text or '').strip()}")
    return "\n".join(lines)


def assert_graphs_match(a: ovq.Graph, b: ovq.Graph) -> None:
    """Same ops, names, types, attributes, tensor names and constant bytes."""
    assert len(a) == len(b)
    assert a.op_histogram() == b.op_histogram()
    for (na, oa), (nb, ob) in zip(a.walk(), b.walk(), strict=True):
        assert (na, oa.name, oa.type, oa.version) == (nb, ob.name, ob.type, ob.version)
        assert oa.attrs == ob.attrs or oa.is_const
        assert [p.names for p in oa.outputs] == [p.names for p in ob.outputs]
        assert oa.layer_attrs == ob.layer_attrs
        if oa.is_const:
            assert oa.const.element_type == ob.const.element_type
            assert oa.const.shape == ob.const.shape
            assert bytes(oa.const.raw()) == bytes(ob.const.raw())
