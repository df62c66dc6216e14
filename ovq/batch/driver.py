"""``ovq.batch.run``: the driver of a batch run, the only process that writes the journal.

In order: check and lock the output folder, read the manifest (every manifest error
before anything runs), finish commits a killed run left half done, remove stale staging
folders, compute job keys and skip finished unchanged jobs, run the rest on an engine
(admission by estimated memory, retries of jobs whose worker died), commit each job's
outputs as it finishes, and write the summary.
"""

from __future__ import annotations

import collections
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ovq.batch.journal import Journal
from ovq.batch.keys import job_key
from ovq.batch.manifest import Job, load_manifest
from ovq.batch.memory import MemoryModel
from ovq.batch.outputs import commit, outputs_match, staging_dir, sweep_staging
from ovq.batch.progress import JobRecord, Progress, format_table, write_summary
from ovq.errors import BatchError, OptionError

__all__ = ["BatchResult", "run"]

LOCK_NAME = ".ovq-batch.lock"


@dataclass
class BatchResult:
    """What a batch run did: one record per job (manifest order) and the summary files."""

    records: list[JobRecord]
    seconds: float
    summary_json: Path
    summary_csv: Path

    @property
    def failed(self) -> list[JobRecord]:
        return [r for r in self.records if r.status == "failed"]

    def table(self) -> str:
        return format_table(self.records)


def _prepare_outdir(outdir: Path) -> Any:
    """Create ``outdir``, check it is writable and take its lock (held until the process ends)."""
    import fcntl

    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BatchError(f"{outdir}: cannot create the output folder: {exc.strerror}") from None
    if not outdir.is_dir():
        raise BatchError(f"{outdir}: not a folder")
    if not os.access(outdir, os.W_OK | os.X_OK):
        raise BatchError(f"{outdir}: the output folder is not writable")
    try:
        lock = open(outdir / LOCK_NAME, "a+")
    except OSError as exc:
        raise BatchError(f"{outdir}: the output folder is not writable: {exc.strerror}") from None
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        raise BatchError(f"{outdir}: another ovq batch run is using this output folder") from None
    return lock


def _recover(journal: Journal, jobs: list[Job]) -> None:
    """Finish commits a killed run left in ``committing``; sweep orphan staging folders."""
    for entry in journal.entries():
        if entry.status != "committing":
            continue
        output = Path(entry.output)
        staged = Path(entry.staging) / output.name if entry.staging else None
        if staged is not None and staged.parent.is_dir():
            if staged.exists() or staged.with_suffix(".bin").exists():
                commit(staged, output)
        if outputs_match(output, entry.digests):
            journal.done(entry.output)
        else:
            journal.failed(entry.output, entry.name, entry.key, "interrupted while committing; will run again")
    sweep_staging({j.output.parent for j in jobs})


def run(
    manifest: str | os.PathLike[str],
    outdir: str | os.PathLike[str],
    *,
    jobs: int | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    retry: int = 1,
    force: bool = False,
    threads: int | None = None,
    memory_budget: int | None = None,
    progress: bool | None = None,
    stream: TextIO | None = None,
) -> BatchResult:
    """Run every job of ``manifest`` with outputs under ``outdir``; return the records.

    Args:
        manifest: A TOML (or JSON) manifest (docs/batch.md).
        outdir: Output folder; holds the journal, worker logs and the summaries.
        jobs: Jobs at once (default: the number of cores; on Ray, the cluster's CPUs).
        engine: ``local`` (worker processes here) or ``ray``.
        ray_address: Ray cluster to join (``auto``, ``HOST:PORT``); ``None`` starts a local one.
        retry: Times a job whose worker died is run again in a fresh process.
        force: Run every job even if the journal has it done with the same key.
        threads: OpenVINO threads per job (default: cores // jobs).
        memory_budget: Bytes the running jobs' estimates may add up to (default 80 %
            of the memory available at the start).
        progress: Live view (``None``: redraw on a terminal, plain lines elsewhere).
        stream: Where progress goes (default stderr).

    Raises:
        ManifestError: the manifest is malformed (nothing ran).
        BatchError: the output folder cannot be used, or the Ray cluster does not answer.
    """
    from ovq.batch.local import LocalEngine, cores, default_threads

    t_start = time.monotonic()
    if engine not in ("local", "ray"):
        raise OptionError(f"engine: {engine!r} is not an engine (local, ray)")
    if ray_address is not None and engine != "ray":
        raise OptionError("ray_address (--ray-address) needs engine='ray' (--engine ray)")
    if jobs is not None and jobs < 1:
        raise OptionError(f"jobs: must be >= 1, got {jobs}")
    if retry < 0:
        raise OptionError(f"retry: must be >= 0, got {retry}")
    out = Path(outdir).resolve()
    job_list = load_manifest(manifest, out)
    lock = _prepare_outdir(out)
    journal = Journal(out)
    stream = stream or sys.stderr
    try:
        _recover(journal, job_list)
        keys = {j.index: job_key(j) for j in job_list}
        records: dict[int, JobRecord] = {}
        todo: list[Job] = []
        for job in job_list:
            entry = journal.get(str(job.output))
            key = keys[job.index]
            if (not force and entry is not None and entry.status == "done" and entry.key == key
                    and outputs_match(job.output, entry.digests)):
                records[job.index] = JobRecord.of(job.name, str(job.output), "skipped", key, entry.result,
                                                  seconds=entry.seconds, attempts=entry.attempts)
            elif job.error is not None:
                journal.failed(str(job.output), job.name, key, f"{job.where}: {job.error}")
                records[job.index] = JobRecord.of(job.name, str(job.output), "failed", key, None,
                                                  error=f"{job.where}: {job.error}")
            else:
                todo.append(job)
        view = Progress(len(job_list), sum(r.status == "skipped" for r in records.values()), stream, progress)
        for r in records.values():
            if r.status == "failed":
                view.finish(r.name, False, 0.0, r.error or "")
        if todo:
            memory = MemoryModel(journal, memory_budget)
            if engine == "ray":
                from ovq.batch.ray_engine import RayEngine

                eng: Any = RayEngine(ray_address, jobs, threads, memory)
            else:
                workers = jobs or cores()
                eng = LocalEngine(workers, threads or default_threads(workers), out / "logs")
            view.t0 = time.monotonic()  # the ETA counts from a ready engine (Ray may take seconds to start)
            try:
                _execute(todo, keys, eng, journal, memory, view, records, retry)
            finally:
                eng.close()
        view.close()
        ordered = [records[j.index] for j in job_list]
        meta = {"manifest": str(Path(manifest).resolve()), "outdir": str(out), "engine": engine,
                "seconds": round(time.monotonic() - t_start, 3),
                "done": sum(r.status == "done" for r in ordered), "skipped": sum(r.status == "skipped" for r in ordered),
                "failed": sum(r.status == "failed" for r in ordered)}
        json_path, csv_path = write_summary(out, ordered, meta)
        return BatchResult(ordered, time.monotonic() - t_start, json_path, csv_path)
    finally:
        journal.close()
        lock.close()


def _execute(todo: list[Job], keys: dict[int, str], eng: Any, journal: Journal, memory: MemoryModel,
             view: Progress, records: dict[int, JobRecord], retry: int) -> None:
    """Run ``todo`` on ``eng`` until every job is done or failed."""
    queue = collections.deque(todo)
    by_id = {j.index: j for j in todo}
    estimates = {j.index: memory.estimate(j) for j in todo}
    running: dict[int, tuple[str, float]] = {}  # job -> (staging, start time)
    attempts: dict[int, int] = collections.Counter()
    while queue or running:
        while queue and len(running) < eng.capacity:
            job = queue[0]
            if (getattr(eng, "memory_admission", True)
                    and not memory.admits(estimates[job.index], [estimates[i] for i in running])):
                break
            queue.popleft()
            key = keys[job.index]
            attempts[job.index] += 1
            journal.running(str(job.output), job.name, key)
            staging = staging_dir(job.output, key, attempts[job.index])
            running[job.index] = (str(staging), time.monotonic())
            view.start(job.name, attempts[job.index])
            eng.submit(job.index, {**job.to_spec(), "_memory": estimates[job.index]}, str(staging), job.timeout)
        for ev in eng.poll(0.25):
            job = by_id[ev.job_id]
            if ev.kind == "phase":
                view.phase(job.name, ev.data.get("phase", ""))
                continue
            staging, t0 = running.pop(ev.job_id)
            seconds = time.monotonic() - t0
            key, output = keys[job.index], str(job.output)
            if ev.kind == "result" and ev.data.get("ok"):
                result = ev.data["result"]
                _commit(journal, job, Path(ev.data["staged"]), result, seconds)
                memory.learn(job, int(result.get("peak_rss") or 0))
                records[job.index] = JobRecord.of(job.name, output, "done", key, result, seconds=seconds,
                                                  attempts=attempts[job.index])
                view.finish(job.name, True, seconds)
                continue
            if ev.kind == "died" and attempts[job.index] <= retry:
                _discard(staging)
                view.retry(job.name, ev.data["error"])
                queue.appendleft(job)
                continue
            _discard(staging)
            if ev.kind == "timeout":
                error = f"{job.where}: timed out after {job.timeout:g} s"
            elif ev.kind == "died":
                error = f"{job.where}: {ev.data['error']} (attempt {attempts[job.index]})"
            else:
                error = ev.data.get("error", "failed")
            journal.failed(output, job.name, key, error, seconds)
            records[job.index] = JobRecord.of(job.name, output, "failed", key, None, seconds=seconds,
                                              attempts=attempts[job.index], error=error)
            view.finish(job.name, False, seconds, error)


def _commit(journal: Journal, job: Job, staged: Path, result: dict[str, Any], seconds: float) -> None:
    from ovq.batch.outputs import digests

    output = str(job.output)
    journal.committing(output, str(staged.parent), digests(staged), result)
    commit(staged, job.output)
    journal.done(output, seconds)


def _discard(staging: str) -> None:
    import shutil

    shutil.rmtree(staging, ignore_errors=True)
