"""``ovq.batch.run``: the driver of a batch run, the only process that writes the journal.

In order: check and lock the output folder, read the manifest (every manifest error
before anything runs), finish commits a killed run left half done, remove stale staging
folders, compute job keys and skip finished unchanged jobs, run the rest on an engine
(admission by estimated memory, retries of jobs whose worker died; a sharded job as its
statistics tasks, whose partial statistics are merged here, then its finishing task),
commit each job's outputs (and reports) as it finishes, and write the summary and the
index page (``index.html``, also when jobs failed or every job was skipped).
"""

from __future__ import annotations

import collections
import itertools
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ovq.batch.journal import Journal
from ovq.batch.keys import job_key
from ovq.batch.manifest import Job, load_manifest
from ovq.batch.memory import MemoryModel
from ovq.batch.outputs import commit, outputs_match, report_paths, staging_dir, sweep_staging
from ovq.batch.progress import JobRecord, Progress, format_table, write_summary
from ovq.batch.reports import write_index
from ovq.errors import BatchError, OptionError

__all__ = ["BatchResult", "run"]

LOCK_NAME = ".ovq-batch.lock"


@dataclass
class BatchResult:
    """What a batch run did: one record per job (manifest order), the summary files and
    the index page."""

    records: list[JobRecord]
    seconds: float
    summary_json: Path
    summary_csv: Path
    index_html: Path | None = None

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
            if staged.exists() or staged.with_suffix(".bin").exists():  # the .xml moves last
                commit(staged, output, drop_report="report_html" not in (entry.digests or {}))
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
    shards: int | None = None,
    report: bool = False,
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
        shards: Split each quantize job's calibration subset into this many contiguous
            slices whose statistics run as separate tasks, merged bit for bit on the
            driver (a job's own ``shards`` field wins; docs/batch.md). Default 1.
        report: Each job also writes its HTML report and JSON twin beside its output
            (``int8.xml`` -> ``int8.report.html``, ``int8.report.json``); a job's own
            ``report`` field wins. Part of the job key: turning it on reruns done jobs.

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
    if shards is not None and (isinstance(shards, bool) or not isinstance(shards, int) or shards < 1):
        raise OptionError(f"shards: must be a positive integer, got {shards!r}")
    if not isinstance(report, bool):
        raise OptionError(f"report: expected True or False, got {report!r}")
    out = Path(outdir).resolve()
    job_list = load_manifest(manifest, out, report=report)
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
                per_job = {j.index: j.shards if j.shards is not None else (shards or 1) if j.kind == "quantize" else 1
                           for j in todo}
                _execute(todo, keys, eng, journal, memory, view, records, retry, per_job)
            finally:
                eng.close()
        view.close()
        ordered = [records[j.index] for j in job_list]
        for job, r in zip(job_list, ordered):
            r.kind = job.kind
            if job.report and r.status in ("done", "skipped"):
                r.report = str(report_paths(job.output)[0])
        meta = {"manifest": str(Path(manifest).resolve()), "outdir": str(out), "engine": engine,
                "seconds": round(time.monotonic() - t_start, 3),
                "done": sum(r.status == "done" for r in ordered), "skipped": sum(r.status == "skipped" for r in ordered),
                "failed": sum(r.status == "failed" for r in ordered)}
        json_path, csv_path = write_summary(out, ordered, meta)
        index = write_index(out, ordered, meta)
        return BatchResult(ordered, time.monotonic() - t_start, json_path, csv_path, index)
    finally:
        journal.close()
        lock.close()


@dataclass
class _Task:
    """One unit of work for an engine: a whole job, one statistics slice of a sharded job
    (``shard``), or a sharded job's finishing task (``finish``: quantize with the merged
    statistics and write)."""

    job: Job
    shard: int | None = None
    finish: bool = False

    @property
    def label(self) -> str:
        return "job" if self.shard is None and not self.finish else "finish" if self.finish else f"shard{self.shard}"


@dataclass
class _Run:
    """A started job: its staging folder, start time, slices and tasks in flight."""

    staging: str
    t0: float
    shards: int
    partials: dict[int, str] = field(default_factory=dict)
    in_flight: int = 0
    failed: bool = False
    peak_rss: int = 0
    shard_seconds: list[float] = field(default_factory=list)


def _execute(todo: list[Job], keys: dict[int, str], eng: Any, journal: Journal, memory: MemoryModel,
             view: Progress, records: dict[int, JobRecord], retry: int, shards: dict[int, int]) -> None:
    """Run ``todo`` on ``eng`` until every job is done or failed.

    A job with ``shards[job] > 1`` runs as that many statistics tasks (placed like
    jobs, one slot each), whose partial statistics the driver merges (numpy only) before
    it queues the job's finishing task first in line.
    """
    from ovq.batch.shards import MERGED_NAME, merge_files
    from ovq.errors import OvqError

    queue: collections.deque[_Task] = collections.deque()
    for job in todo:
        n = shards[job.index]
        queue.extend([_Task(job)] if n == 1 else [_Task(job, shard=k) for k in range(n)])
    estimates = {j.index: memory.estimate(j) for j in todo}
    running: dict[int, _Task] = {}  # task id -> task
    runs: dict[int, _Run] = {}  # job -> its run
    starts: dict[int, int] = collections.Counter()  # job -> times started (a new staging folder each)
    tries: dict[tuple[int, str], int] = collections.Counter()  # (job, task) -> times submitted
    ids = itertools.count()

    def attempts(job: Job) -> int:
        """Submissions of the job's most-tried task."""
        return max(v for (j, _t), v in tries.items() if j == job.index)

    def fail(task: _Task, error: str, seconds: float) -> None:
        job = task.job
        run = runs[job.index]
        run.failed = True
        queue_left = [t for t in queue if t.job.index != job.index]
        queue.clear()
        queue.extend(queue_left)
        journal.failed(str(job.output), job.name, keys[job.index], error, seconds)
        records[job.index] = JobRecord.of(job.name, str(job.output), "failed", keys[job.index], None,
                                          seconds=seconds, attempts=attempts(job), error=error)
        view.finish(job.name, False, seconds, error)

    def release(job: Job) -> None:
        run = runs[job.index]
        if run.in_flight == 0:
            _discard(run.staging)
            del runs[job.index]

    while queue or running:
        while queue and len(running) < eng.capacity:
            task = queue[0]
            job = task.job
            if (getattr(eng, "memory_admission", True)
                    and not memory.admits(estimates[job.index], [estimates[t.job.index] for t in running.values()])):
                break
            queue.popleft()
            key = keys[job.index]
            if job.index not in runs:
                starts[job.index] += 1
                journal.running(str(job.output), job.name, key)
                runs[job.index] = _Run(str(staging_dir(job.output, key, starts[job.index])), time.monotonic(),
                                       shards[job.index])
                view.start(job.name, starts[job.index])
            run = runs[job.index]
            tries[(job.index, task.label)] += 1
            spec = {**job.to_spec(), "_memory": estimates[job.index]}
            if task.shard is not None:
                spec.update(shard=task.shard, shards=run.shards)
            if task.finish:
                spec["statistics"] = str(Path(run.staging) / MERGED_NAME)
            task_id = next(ids)
            running[task_id] = task
            run.in_flight += 1
            eng.submit(task_id, spec, run.staging, job.timeout)
        for ev in eng.poll(0.25):
            task = running.get(ev.job_id)
            if task is None:
                continue
            job = task.job
            run = runs[job.index]
            where = "" if run.shards == 1 else (f"shard {task.shard + 1}/{run.shards}: " if task.shard is not None
                                                else "finishing: ")
            if ev.kind == "phase":
                if not run.failed:
                    view.phase(job.name, where + ev.data.get("phase", ""))
                continue
            del running[ev.job_id]
            run.in_flight -= 1
            seconds = time.monotonic() - run.t0
            if run.failed:  # another task of this job failed: nothing of it is kept
                release(job)
                continue
            ok = ev.kind == "result" and ev.data.get("ok")
            if ok and task.shard is not None:
                result = ev.data["result"]
                run.partials[task.shard] = result["partial"]
                run.peak_rss = max(run.peak_rss, int(result.get("peak_rss") or 0))
                run.shard_seconds.append(round(float(result.get("seconds") or 0.0), 3))
                if len(run.partials) == run.shards:
                    view.phase(job.name, "merging statistics")
                    try:
                        merge_files([Path(run.partials[k]) for k in range(run.shards)],
                                    Path(run.staging) / MERGED_NAME)
                    except OvqError as exc:
                        fail(task, f"{job.where}: {exc}", seconds)
                        release(job)
                        continue
                    queue.appendleft(_Task(job, finish=True))
                continue
            if ok:
                result = dict(ev.data["result"])
                result["peak_rss"] = max(run.peak_rss, int(result.get("peak_rss") or 0))
                if run.shards > 1:
                    # the slowest statistics task (read, placement and its slice's pass)
                    result.update(shards=run.shards, shard_seconds=run.shard_seconds,
                                  phases={"statistics_tasks": max(run.shard_seconds), **result.get("phases", {})})
                _commit(journal, job, Path(ev.data["staged"]), result, seconds)
                memory.learn(job, int(result.get("peak_rss") or 0))
                records[job.index] = JobRecord.of(job.name, str(job.output), "done", keys[job.index], result,
                                                  seconds=seconds, attempts=attempts(job))
                view.finish(job.name, True, seconds)
                del runs[job.index]
                continue
            if ev.kind == "died" and tries[(job.index, task.label)] <= retry:
                if run.shards == 1:  # the job again from scratch, in a new staging folder
                    view.retry(job.name, ev.data["error"])
                    release(job)
                else:  # the task again, beside its job's other tasks' files
                    view.phase(job.name, f"{where}retrying ({ev.data['error']})")
                queue.appendleft(task)
                continue
            if ev.kind == "timeout":
                error = f"{job.where}: {where}timed out after {job.timeout:g} s"
            elif ev.kind == "died":
                error = f"{job.where}: {where}{ev.data['error']} (attempt {tries[(job.index, task.label)]})"
            else:
                error = ev.data.get("error", "failed")
                if where and error.startswith(job.where):
                    error = f"{job.where}: {where}{error[len(job.where):].lstrip(': ')}"
            fail(task, error, seconds)
            release(job)


def _commit(journal: Journal, job: Job, staged: Path, result: dict[str, Any], seconds: float) -> None:
    from ovq.batch.outputs import digests

    output = str(job.output)
    journal.committing(output, str(staged.parent), digests(staged, report=job.report), result)
    commit(staged, job.output, drop_report=not job.report)
    journal.done(output, seconds)


def _discard(staging: str) -> None:
    import shutil

    shutil.rmtree(staging, ignore_errors=True)
