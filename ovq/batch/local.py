"""The local engine: batch jobs in worker processes on this machine.

Workers are fresh interpreters (``python -m ovq.batch.worker`` through ``subprocess``,
never forked from the driver, which may have loaded OpenVINO) and are reused from job to
job. Each gets ``threads`` OpenVINO inference threads, with ``workers × threads = cores``.
A job runs in one worker at a time; a worker that dies (segfault, OOM kill) or passes
the job's timeout is killed and replaced, and only that job fails (the driver decides
on a retry, which then runs in a fresh process).
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Event", "LocalEngine", "default_threads"]


def cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def default_threads(workers: int) -> int:
    """OpenVINO threads per worker so that workers × threads = cores (at least 1)."""
    return max(1, cores() // max(1, workers))


@dataclass
class Event:
    """Something that happened to a submitted job.

    ``kind`` is ``phase`` (``data["phase"]``), ``result`` (the worker's outcome dict),
    ``died`` (``data["error"]`` says how) or ``timeout``.
    """

    job_id: int
    kind: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Worker:
    proc: subprocess.Popen
    log: Path
    buffer: bytes = b""
    job_id: int | None = None
    deadline: float | None = None


def _signal_text(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (killed: out of memory, or by a user)" if -code == signal.SIGKILL else ""
        return f"the worker process died of {name}{hint}"
    return f"the worker process exited with status {code}"


class LocalEngine:
    """Worker processes on this machine, ``workers`` at most, ``threads`` each."""

    name = "local"

    def __init__(self, workers: int, threads: int, log_dir: Path) -> None:
        self.workers = max(1, workers)
        self.threads = max(1, threads)
        self.log_dir = log_dir
        self.pool: list[_Worker] = []
        self.sel = selectors.DefaultSelector()
        self.seq = 0

    @property
    def capacity(self) -> int:
        return self.workers

    def busy(self) -> int:
        return sum(w.job_id is not None for w in self.pool)

    def _spawn(self) -> _Worker:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.seq += 1
        log = self.log_dir / f"worker-{self.seq}.log"
        env = dict(os.environ)
        n = str(self.threads)
        env.update({"OVQ_BATCH_THREADS": n, "OMP_NUM_THREADS": n, "NUMBA_NUM_THREADS": n, "OVQ_NUM_THREADS": n,
                    "OVQ_BATCH_PARENT": str(os.getpid())})
        with open(log, "wb") as err:
            # -P: the current folder is not put on sys.path, so a checkout's bare ovq/ (no
            # extension) cannot shadow the installed package in the worker
            proc = subprocess.Popen([sys.executable, "-P", "-m", "ovq.batch.worker"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=err, env=env, close_fds=True)
        os.set_blocking(proc.stdout.fileno(), False)
        worker = _Worker(proc, log)
        self.sel.register(proc.stdout, selectors.EVENT_READ, worker)
        self.pool.append(worker)
        return worker

    def submit(self, job_id: int, spec: dict[str, Any], staging: str, timeout: float | None) -> int:
        """Start the job in an idle (or new) worker; return the worker's pid."""
        worker = next((w for w in self.pool if w.job_id is None and w.proc.poll() is None), None)
        if worker is None:
            worker = self._spawn()
        worker.job_id = job_id
        worker.deadline = time.monotonic() + timeout if timeout else None
        worker.proc.stdin.write((json.dumps({"spec": spec, "staging": staging}) + "\n").encode())
        worker.proc.stdin.flush()
        return worker.proc.pid

    def _retire(self, worker: _Worker, kill: bool) -> int:
        if kill and worker.proc.poll() is None:
            worker.proc.kill()
        code = worker.proc.wait()
        try:
            self.sel.unregister(worker.proc.stdout)
        except (KeyError, ValueError):
            pass
        for stream in (worker.proc.stdin, worker.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.pool.remove(worker)
        return code

    def _tail(self, worker: _Worker) -> str:
        try:
            lines = [ln for ln in worker.log.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return f"; last stderr line: {lines[-1].strip()[:300]}" if lines else ""

    def poll(self, timeout: float) -> list[Event]:
        """Wait up to ``timeout`` seconds; return what happened."""
        events: list[Event] = []
        for key, _ in self.sel.select(timeout=timeout if self.pool else 0):
            worker: _Worker = key.data
            try:
                chunk = os.read(worker.proc.stdout.fileno(), 1 << 16)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if not chunk:  # EOF: the worker is gone
                job_id = worker.job_id
                tail = self._tail(worker)
                code = self._retire(worker, kill=True)
                if job_id is not None:
                    events.append(Event(job_id, "died", {"error": _signal_text(code) + tail}))
                continue
            worker.buffer += chunk
            *lines, worker.buffer = worker.buffer.split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                msg = json.loads(line)
                if msg.get("event") == "phase" and worker.job_id is not None:
                    events.append(Event(worker.job_id, "phase", msg))
                elif msg.get("event") == "result" and worker.job_id is not None:
                    events.append(Event(worker.job_id, "result", msg))
                    worker.job_id, worker.deadline = None, None
        now = time.monotonic()
        for worker in list(self.pool):
            if worker.job_id is not None and worker.deadline is not None and now > worker.deadline:
                job_id = worker.job_id
                self._retire(worker, kill=True)
                events.append(Event(job_id, "timeout", {}))
        return events

    def close(self) -> None:
        """Stop every worker (idle ones by closing their input, busy ones by a kill)."""
        for worker in list(self.pool):
            if worker.job_id is None:
                try:
                    worker.proc.stdin.close()
                except OSError:
                    pass
                try:
                    worker.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            self._retire(worker, kill=True)
        self.sel.close()
