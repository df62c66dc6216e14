"""Peak-memory estimates for admitting batch jobs, learnt from finished ones.

:func:`raw_estimate` guesses a job's peak resident memory from what can be read without
OpenVINO: the model's file sizes and its inputs' shapes (the IR's ``Parameter`` layers)
times the calibration subset. :class:`MemoryModel` scales that guess by the largest
measured/estimated ratio of recently finished jobs (kept in the journal, so a rerun
starts from what earlier runs learnt), and admits a job while the running jobs'
estimates fit in the memory that was available when the batch started.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ovq.batch.journal import Journal
    from ovq.batch.manifest import Job

__all__ = ["MemoryModel", "available_memory", "raw_estimate"]

MiB = 1 << 20
#: A worker process with Python, numpy, OpenVINO and ovq loaded, before any model.
PROCESS_BASE = 300 * MiB
_PARAM = re.compile(rb'<layer[^>]*type="Parameter"[^>]*>\s*<data[^>]*shape="([^"]*)"[^>]*element_type="(\w+)"'
                    rb'|<layer[^>]*type="Parameter"[^>]*>\s*<data[^>]*element_type="(\w+)"[^>]*shape="([^"]*)"')
_BYTES = {"f32": 4, "i32": 4, "u32": 4, "f16": 2, "bf16": 2, "i64": 8, "u64": 8, "f64": 8, "i8": 1, "u8": 1,
          "boolean": 1, "i16": 2, "u16": 2}


def _input_bytes(model: Path) -> int:
    """Bytes of one sample of every input of an IR (dynamic dimensions count as 1)."""
    if model.suffix.lower() != ".xml":
        return 4 * 224 * 224 * 3
    try:
        head = model.read_bytes()[: 4 << 20]
    except OSError:
        return 0
    total = 0
    for m in _PARAM.finditer(head):
        shape, et = (m.group(1), m.group(2)) if m.group(1) is not None else (m.group(4), m.group(3))
        n = 1
        for d in shape.decode().replace("?", "1").split(","):
            d = d.strip()
            n *= int(d) if d.isdigit() else 1
        total += n * _BYTES.get(et.decode(), 4)
    return total


def raw_estimate(job: Job) -> int:
    """A first guess of the job's peak memory (bytes), before any learning."""
    from ovq.batch.keys import model_files

    files = [p for p in model_files(job.model) if p.is_file()]
    model_bytes = sum(p.stat().st_size for p in files)
    subset = job.options.get("subset_size", 300) or 300
    # The FP model, its compiled form, the mirror, the quantized copy and its compiled
    # form for the audit each hold the weights; activations of a few requests in flight
    # plus the kept calibration samples scale with the input size.
    return PROCESS_BASE + 6 * model_bytes + _input_bytes(job.model) * (2 * int(subset) + 64)


def available_memory() -> int:
    """``MemAvailable`` from ``/proc/meminfo`` (bytes; 4 GiB where it cannot be read)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


class MemoryModel:
    """Estimates scaled by what finished jobs measured, and the admission rule."""

    KEEP = 32

    def __init__(self, journal: Journal | None = None, budget: int | None = None) -> None:
        self.journal = journal
        self.budget = int(0.8 * available_memory()) if budget is None else budget
        self.ratios: list[float] = []
        if journal is not None:
            try:
                self.ratios = [float(r) for r in json.loads(journal.meta("memory_ratios", "[]") or "[]")]
            except (ValueError, TypeError):
                self.ratios = []

    @property
    def scale(self) -> float:
        """The factor applied to raw estimates: the largest recent measured/estimated ratio (1 at first)."""
        return max(self.ratios) if self.ratios else 1.0

    def estimate(self, job: Job) -> int:
        return int(raw_estimate(job) * self.scale)

    def learn(self, job: Job, peak: int) -> None:
        """Record a finished job's measured peak resident memory."""
        if peak <= 0:
            return
        self.ratios = (self.ratios + [peak / raw_estimate(job)])[-self.KEEP:]
        if self.journal is not None:
            self.journal.set_meta("memory_ratios", json.dumps([round(r, 4) for r in self.ratios]))

    def admits(self, estimate: int, running: list[int]) -> bool:
        """Whether a job of ``estimate`` bytes may start beside jobs of ``running`` bytes.

        A job always starts when nothing runs (it could never start otherwise).
        """
        return not running or sum(running) + estimate <= self.budget
