"""The Ray engine on a real Ray: a local ``ray.init(num_cpus=2)`` and a two-node
``ray.cluster_utils.Cluster`` on this machine. Marked ``ray`` (CI installs ``ovq[ray]``)."""

from __future__ import annotations

import hashlib
import time

import pytest

from ovq.batch import run
from ovq.errors import BatchError

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray")

FOUR_JOBS = """
    [defaults]
    data = "calib.npy"
    subset_size = 16
    output = "{outdir}/{name}/int8.xml"
    [[job]]
    name = "a"
    model = "models/digits.xml"
    [[job]]
    name = "b"
    model = "models/digits.xml"
    preset = "mixed"
    [[job]]
    name = "c"
    model = "models/tiny.xml"
    [[job]]
    name = "d"
    model = "models/tiny.xml"
    preset = "mixed"
"""


@pytest.fixture(autouse=True)
def outside_the_checkout(tmp_path, monkeypatch):
    """Ray's workers start in the driver's folder and put it on sys.path: from the
    repository root they would import the bare ovq/ of the checkout (no extension)
    instead of the installed package, as any Python started there does."""
    monkeypatch.chdir(tmp_path)


def _files(out):
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("int8.*"))}


def test_unreachable_address_is_an_error_within_seconds(workspace, manifest):
    if ray.is_initialized():
        ray.shutdown()
    path = manifest(FOUR_JOBS)
    t0 = time.monotonic()
    with pytest.raises(BatchError, match=r"Ray cluster at 127\.0\.0\.1:9 does not answer"):
        run(path, workspace / "out", engine="ray", ray_address="127.0.0.1:9", progress=False)
    assert time.monotonic() - t0 < 10


def test_local_ray_gives_the_local_engines_outputs_bit_for_bit(workspace, manifest):
    path = manifest(FOUR_JOBS + """
    [[job]]
    name = "crash_once"
    model = "models/tiny.xml"
    data = "loaders:crash_once"
    """)
    (workspace / "loaders.py").write_text(
        "import os, signal\nfrom pathlib import Path\nimport numpy as np\n"
        "def crash_once():\n"
        "    marker = Path(__file__).parent / 'crashed'\n"
        "    if not marker.exists():\n"
        "        marker.write_text('x')\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return [np.zeros((1, 1, 8, 8), np.float32)]\n")
    local = run(path, workspace / "local", jobs=2, progress=False)
    assert all(r.status == "done" for r in local.records), local.table()
    (workspace / "crashed").unlink()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = run(path, workspace / "ray", engine="ray", progress=False)
    finally:
        ray.shutdown()
    assert all(r.status == "done" for r in result.records), result.table()
    crash = next(r for r in result.records if r.name == "crash_once")
    assert crash.attempts == 2  # the Ray worker died, the job ran again in another
    assert _files(workspace / "ray") == _files(workspace / "local")


def test_two_node_cluster_on_one_machine(workspace, manifest):
    from ray.cluster_utils import Cluster

    path = manifest(FOUR_JOBS)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        result = run(path, workspace / "out", engine="ray", progress=False)
        assert all(r.status == "done" for r in result.records), result.table()
        assert len({r.node for r in result.records}) == 2  # both nodes ran jobs
        again = run(path, workspace / "out", engine="ray", progress=False)
        assert [r.status for r in again.records] == ["skipped"] * 4
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_sharded_job_on_ray_gives_the_unsharded_outputs(workspace, manifest):
    path = manifest(FOUR_JOBS.replace("subset_size = 16", "subset_size = 12"))
    plain = run(path, workspace / "local", jobs=2, progress=False)
    assert all(r.status == "done" for r in plain.records), plain.table()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = run(path, workspace / "ray", engine="ray", shards=2, progress=False)
    finally:
        ray.shutdown()
    assert all(r.status == "done" and r.shards == 2 for r in result.records), result.table()
    assert _files(workspace / "ray") == _files(workspace / "local")
    assert not list(workspace.rglob(".ovq-staging-*"))
