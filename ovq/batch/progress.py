"""The live view of a batch run, and its summary (table, ``summary.json``, ``summary.csv``).

On a terminal the view redraws a few lines in place (counts, ETA, one line per running
job with its phase); elsewhere it prints one plain line per job start, retry, finish and
failure, so logs stay readable.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

__all__ = ["JobRecord", "Progress", "format_table", "write_summary"]


@dataclass
class JobRecord:
    """One job's line of the summary.

    ``status`` is ``done`` (ran now), ``skipped`` (done by an earlier run, unchanged) or
    ``failed``.
    """

    name: str
    output: str
    status: str
    seconds: float | None = None
    attempts: int = 0
    int8_coverage: float | None = None
    int8_layers: int | None = None
    audited_layers: int | None = None
    size_before: int | None = None
    size_after: int | None = None
    metric: float | None = None
    peak_rss: int | None = None
    error: str | None = None
    node: str | None = None
    key: str = ""
    phases: dict[str, float] = field(default_factory=dict)
    shards: int = 1
    precisions: dict[str, int] | None = None  # compress jobs: weights per precision label
    kind: str = ""
    report: str | None = None  # the job's report page, when it has one (done or skipped)

    def precision_text(self) -> str:
        """``int4_asym g128: 10, int8_asym: 2`` (compress jobs), else ``-``."""
        if not self.precisions:
            return "-"
        return ", ".join(f"{label}: {n}" for label, n in sorted(self.precisions.items()))

    @classmethod
    def of(cls, name: str, output: str, status: str, key: str, result: dict[str, Any] | None, **extra: Any) -> JobRecord:
        r = result or {}
        return cls(name=name, output=output, status=status, key=key, int8_coverage=r.get("int8_coverage"),
                   int8_layers=r.get("int8_layers"), audited_layers=r.get("audited_layers"),
                   size_before=r.get("size_before"), size_after=r.get("size_after"), metric=r.get("metric"),
                   peak_rss=r.get("peak_rss"), node=r.get("node"), phases=r.get("phases") or {},
                   shards=int(r.get("shards") or 1), precisions=r.get("precisions"), **extra)


def _mib(n: int | None) -> str:
    return f"{n / 2**20:.2f}" if n is not None else "-"


def format_table(records: list[JobRecord]) -> str:
    """The summary table: job, status, time, INT8 coverage, size before → after, metric,
    and when some job has them, the slices (``shards``) and the weights per precision
    (``compress`` jobs)."""
    header = ["job", "status", "time s", "INT8", "MiB before", "MiB after", "metric"]
    sharded = any(r.shards > 1 for r in records)
    compressed = any(r.precisions for r in records)
    header += ["shards"] * sharded + ["weights per precision"] * compressed
    rows = [tuple(header)]
    for r in records:
        cov = (f"{r.int8_layers}/{r.audited_layers}" if r.audited_layers is not None else "-")
        row = [r.name, r.status, f"{r.seconds:.1f}" if r.seconds is not None else "-", cov,
               _mib(r.size_before), _mib(r.size_after), f"{r.metric:.4g}" if r.metric is not None else "-"]
        row += [str(r.shards)] * sharded + [r.precision_text()] * compressed
        rows.append(tuple(row))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    last = len(widths) - 1 if compressed else -1  # the precision list reads left-aligned
    lines = ["  ".join(c.ljust(w) if i in (0, last) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             .rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in records:
        if r.status == "failed" and r.error:
            lines.append(f"{r.name}: {r.error}")
    return "\n".join(lines)


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary beside it renamed over it (mode 0644)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_summary(outdir: Path, records: list[JobRecord], meta: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``summary.json`` (``meta`` and every record) and ``summary.csv`` atomically."""
    doc = {**meta, "jobs": [asdict(r) for r in records]}
    json_path, csv_path = outdir / "summary.json", outdir / "summary.csv"
    write_text_atomically(json_path, json.dumps(doc, indent=2, default=str) + "\n")
    buf = io.StringIO()
    columns = ["name", "status", "seconds", "attempts", "int8_layers", "audited_layers", "int8_coverage",
               "size_before", "size_after", "metric", "peak_rss", "shards", "precisions", "kind", "output", "report",
               "key", "error"]
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for r in records:
        writer.writerow({**asdict(r), "precisions": r.precision_text() if r.precisions else ""})
    write_text_atomically(csv_path, buf.getvalue())
    return json_path, csv_path


class Progress:
    """Counts, ETA and per-job phases, redrawn on a terminal or as plain lines."""

    def __init__(self, total: int, skipped: int, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.total, self.skipped = total, skipped
        self.done = self.failed = 0
        self.running: dict[str, tuple[str, float]] = {}
        self.t0 = time.monotonic()
        self.durations: list[float] = []
        self.drawn = 0
        self.last_draw = 0.0

    def _eta(self) -> str:
        left = self.total - self.skipped - self.done - self.failed
        if not self.durations or left <= 0:
            return "-"
        elapsed = time.monotonic() - self.t0
        per_job = elapsed / (self.done + self.failed)
        return f"{per_job * left:.0f} s"

    def _say(self, line: str) -> None:
        if not self.live:
            self.stream.write(line + "\n")
            self.stream.flush()

    def start(self, name: str, attempt: int) -> None:
        self.running[name] = ("starting", time.monotonic())
        self._say(f"start  {name}" + (f" (attempt {attempt})" if attempt > 1 else ""))
        self.draw()

    def phase(self, name: str, phase: str) -> None:
        if name in self.running:
            self.running[name] = (phase, self.running[name][1])
        self.draw()

    def finish(self, name: str, ok: bool, seconds: float, detail: str = "") -> None:
        self.running.pop(name, None)
        self.durations.append(seconds)
        if ok:
            self.done += 1
        else:
            self.failed += 1
        self._say(f"{'done  ' if ok else 'FAILED'} {name} ({seconds:.1f} s){': ' + detail if detail else ''}"
                  f"  [{self.counts()}]")
        self.draw(force=True)

    def retry(self, name: str, why: str) -> None:
        self.running.pop(name, None)
        self._say(f"retry  {name}: {why}")
        self.draw(force=True)

    def counts(self, eta: bool = True) -> str:
        return (f"{self.done + self.skipped}/{self.total} done ({self.skipped} unchanged), {len(self.running)} running, "
                f"{self.failed} failed" + (f", ETA {self._eta()}" if eta else ""))

    def draw(self, force: bool = False) -> None:
        if not self.live:
            return
        now = time.monotonic()
        if not force and now - self.last_draw < 0.2:
            return
        self.last_draw = now
        lines = [self.counts()] + [f"  {name}: {phase} ({now - t:.0f} s)" for name, (phase, t) in self.running.items()]
        out = ("\x1b[F\x1b[K" * self.drawn) + "\n".join(lines) + "\n"
        self.stream.write(out)
        self.stream.flush()
        self.drawn = len(lines)

    def close(self) -> None:
        if self.live and self.drawn:
            self.stream.write("\x1b[F\x1b[K" * self.drawn)
            self.drawn = 0
        self.stream.write(f"batch: {self.counts(eta=False)} in {time.monotonic() - self.t0:.1f} s\n")
        self.stream.flush()
