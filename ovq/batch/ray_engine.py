"""The Ray engine: batch jobs as Ray tasks on a local Ray or a cluster.

Each job is one task with ``num_cpus`` = its OpenVINO thread count and ``memory`` = its
estimated peak (capped at the largest node's memory, so a task can always be placed).
A task reads the model and data from their paths and writes its outputs into a staging
folder beside the final output, so every node must see the same paths (a shared
filesystem); only the job's figures (a small dict) travel back through Ray. The driver
owns the journal and commits the staged outputs as on the local engine.

``address=None`` starts a local Ray for the run (and stops it after); ``"auto"`` or
``HOST:PORT`` joins a running cluster. An address that does not answer is an error within
seconds. If the calling process has already called ``ray.init``, that Ray is used.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from ovq.batch.local import Event
from ovq.errors import BatchError

__all__ = ["RayEngine"]


def _task(spec: dict[str, Any], staging: str, threads: int) -> dict[str, Any]:
    """One job inside a Ray worker process."""
    from ovq.batch.worker import configure_threads, run_job

    import ray

    configure_threads(threads)
    outcome = run_job(spec, staging)
    if outcome.get("ok"):
        outcome["result"]["node"] = ray.get_runtime_context().get_node_id()
    return outcome


def _check_reachable(address: str, seconds: float = 5.0) -> None:
    """Refuse a ``HOST:PORT`` that does not accept a connection within ``seconds``."""
    if address in ("auto", "local") or address.startswith("ray://"):
        host_port = address[len("ray://"):] if address.startswith("ray://") else None
    else:
        host_port = address
    if host_port is None:
        return
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise BatchError(f"--ray-address: expected auto, HOST:PORT or ray://HOST:PORT, got {address!r}")
    try:
        with socket.create_connection((host, int(port)), timeout=seconds):
            pass
    except OSError as exc:
        raise BatchError(f"Ray cluster at {address} does not answer ({exc.strerror or exc})") from None


class RayEngine:
    """Jobs as Ray tasks; see the module docstring."""

    name = "ray"
    memory_admission = False  # Ray places tasks by their memory resource

    def __init__(self, address: str | None, jobs: int | None, threads: int | None, memory: Any) -> None:
        try:
            import ray
        except ImportError:
            raise BatchError("the Ray engine needs Ray: pip install 'ovq[ray]' (or pip install ray)") from None
        self.ray = ray
        self.owned = False
        if not ray.is_initialized():
            if address is not None:
                _check_reachable(address)
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                         configure_logging=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = address or "a local Ray"
                raise BatchError(f"cannot start or join {where}: {str(exc).strip().splitlines()[0]}") from None
            self.owned = True
        resources = ray.cluster_resources()
        cpus = int(resources.get("CPU", 1))
        self.threads = threads or (max(1, cpus // jobs) if jobs else 1)
        self.capacity = jobs or max(1, cpus // self.threads)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        self.max_memory = max((int(n["Resources"].get("memory", 0)) for n in nodes), default=0)
        self.memory = memory
        self.remote = ray.remote(_task)
        self.running: dict[Any, tuple[int, float | None]] = {}

    def submit(self, job_id: int, spec: dict[str, Any], staging: str, timeout: float | None) -> None:
        from ovq.batch.memory import MiB

        estimate = int(spec.get("_memory", 0))
        options: dict[str, Any] = {"num_cpus": self.threads, "max_retries": 0}
        if estimate and self.max_memory:
            options["memory"] = max(MiB, min(estimate, self.max_memory))
        ref = self.remote.options(**options).remote(spec, staging, self.threads)
        self.running[ref] = (job_id, time.monotonic() + timeout if timeout else None)

    def poll(self, timeout: float) -> list[Event]:
        ray = self.ray
        events: list[Event] = []
        if self.running:
            ready, _ = ray.wait(list(self.running), num_returns=len(self.running), timeout=timeout)
            for ref in ready:
                job_id, _ = self.running.pop(ref)
                try:
                    events.append(Event(job_id, "result", ray.get(ref)))
                except (ray.exceptions.WorkerCrashedError, ray.exceptions.RayActorError) as exc:
                    events.append(Event(job_id, "died", {"error": f"the Ray worker died: {type(exc).__name__}"}))
                except ray.exceptions.OutOfMemoryError:
                    events.append(Event(job_id, "died", {"error": "the Ray worker was killed: out of memory"}))
                except ray.exceptions.RayError as exc:
                    text = str(exc).strip().splitlines()
                    events.append(Event(job_id, "result", {"ok": False, "error": f"Ray: {text[-1] if text else exc}"}))
        else:
            time.sleep(timeout)
        now = time.monotonic()
        for ref, (job_id, deadline) in list(self.running.items()):
            if deadline is not None and now > deadline:
                ray.cancel(ref, force=True)
                del self.running[ref]
                events.append(Event(job_id, "timeout", {}))
        return events

    def close(self) -> None:
        for ref in list(self.running):
            self.ray.cancel(ref, force=True)
        self.running.clear()
        if self.owned:
            self.ray.shutdown()
