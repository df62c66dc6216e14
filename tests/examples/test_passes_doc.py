"""docs/passes.md: its Python blocks run, in order, as one script."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "passes.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)


def test_every_python_block_runs(capsys, monkeypatch):
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) == 3
    module = types.ModuleType("passes_doc")  # dataclasses look their module up
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for block in blocks:
        exec(compile(block, str(DOC), "exec", dont_inherit=True), module.__dict__)
    assert "drop-neutral-arithmetic: changed" in capsys.readouterr().out
    assert module.DropNeutralArithmeticPass.name == "drop-neutral-arithmetic"


def test_the_doc_shows_the_example_file():
    """The example in the doc is examples/custom_pass.py's rule and pass."""
    doc = DOC.read_text(encoding="utf-8")
    example = (DOC.parents[1] / "examples" / "custom_pass.py").read_text(encoding="utf-8")
    for needle in ('pattern = OpPattern(("Multiply", "Add"), [AnyInput("x"), ConstInput("c", numeric_const)],',
                   "rw.replace_output(match.root, 0, *match.outputs[\"x\"])",
                   'name = "drop-neutral-arithmetic"',
                   "return [DropNeutralOperand(self.tolerance)]"):
        assert needle in doc and needle in example
