"""``ovq batch``: throughput against a shell loop, and kill -9 trials.

Usage::

    python bench/batch.py throughput [--copies N] [--subset-size S] [--model ASSET]
    python bench/batch.py kills [--trials T] [--copies N] [--seed SEED]
    python bench/batch.py ray [--copies N] [--subset-size S]
    python bench/batch.py shards [--shards K] [--subset-size S] [--repeats R]
    python bench/batch.py compress [--copies N]
    python bench/batch.py zoo [--skip-nncf] [--only RUN ...] [--models MODEL ...]

**throughput**: N copies of the shipped digits CNN (``ovq.data``), calibrated on its 300
calibration images. Wall time and models per hour of: a shell loop of ``ovq quantize``
(one process per model, one after another); ``ovq.quantize`` + ``ovq.save_model`` for
every model one after another in one process; ``ovq batch --jobs 1``; ``ovq batch --jobs 2``.
CPU is the run's processes' user+system time over wall time × cores.

**ray**: the same manifest on the local engine (``--jobs 2``), a local Ray with 2 CPUs
and a two-node ``ray.cluster_utils.Cluster`` on this machine (1 CPU per node): wall time
of the batch (Ray's start-up reported apart) and whether the outputs are identical.

**shards**: one EfficientNet-Lite0 job (the ``efficientnet_lite0`` test asset,
calibrated on the first S of its 600 deterministic crops): wall time of ``ovq batch
--jobs 1`` (one worker, all cores), ``--jobs K`` (one worker busy, one thread) and
``--jobs K --shards K`` (K statistics tasks at once, then the finishing task), each R
times (the median is reported), with the load average before and after each, the
statistics seconds, the workers' CPU time (user + system of the worker processes) and
whether the outputs are identical.

**compress**: N copies of EfficientNet-Lite0 as ``kind = "compress"`` jobs (default
options: int8_asym) with ``--jobs 2``: wall time, each job's seconds and the seconds
inside ``ovq.compress_weights``, bytes before and after, weights per precision.

**zoo**: 16 jobs, the four open models (the digits CNN of ``ovq.data`` and the test
assets ``resnet_like``, ``efficientnet_lite0``, ``minilm``) × four option sets
(:data:`ZOO_OPTIONS`: defaults; ``preset = "mixed"``; a smaller ``subset_size``, 100, or
18 for MiniLM's 36 sentences; ``overflow_fix = "first_layer"``; MiniLM always with
``model_type = "transformer"``), calibrated on ``bench/quantize.py``'s ``calibration(name)``
samples, written to one ``.npy`` stack per model (``.npz`` by input name for MiniLM).
The same 16 jobs run, in one invocation: (a) ``ovq.quantize`` + ``ovq.save_model`` for
every job one after another in one fresh process (reading the same files); (b) ``ovq
batch --jobs 2``; (c) ``ovq batch --jobs 1``; (d) a sequential loop of ``nncf.quantize``
scripts, one fresh process per job (read the model, ``nncf.quantize`` with the same
``subset_size``, ``preset``, ``model_type`` and ``overflow_fix``, ``ov.save_model(...,
compress_to_fp16=False)``; an option NNCF lacks would be left at NNCF's default and
listed in the output); ``--skip-nncf`` leaves (d) out, ``--only`` runs some of
``inprocess batch2 batch1 nncf``, ``--models`` some of the models (a quick check). Printed: a markdown table (wall s, models/hour, CPU
busy = the run's child processes' user+system time over wall × cores, load average
before and after), the ratios batch wall / in-process wall and batch models per hour /
nncf-loop models per hour, and each batch run's mean per-job phase seconds (from its
``summary.json``) beside the in-process loop's.

**kills**: T trials on one output folder. Each trial starts ``ovq batch --jobs 2``, waits
a random time, kills the driver or one of its workers (chosen at random) with SIGKILL,
then reruns to completion. Counted: outputs that differ from an uninterrupted run
(corrupted or mismatched), jobs run twice after being done (journal ``finished`` times
that changed), staging/temporary files left after the rerun, unreadable journals. Between
trials a random third of the outputs are deleted so the next trial has work to do.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

OVQ = [sys.executable, "-m", "ovq.cli"]


def _workspace(copies: int, subset: int, model: str | None = None) -> Path:
    """N copies of the digits CNN (or of the asset ``model``, e.g. resnet_like, with random
    normal calibration samples) and a one-glob manifest."""
    from ovq.data import demo_model_path, load_demo_data

    root = Path(tempfile.mkdtemp(prefix="ovq-bench-batch-"))
    for folder in ("models", "loop", "seq"):
        (root / folder).mkdir()
    if model is None:
        src = demo_model_path()
        x, _ = load_demo_data("calib")
        x = x.astype(np.float32)[:, None]  # a stack of [1, 1, 8, 8] samples
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from ovq_testing.assets import asset_path

        src = Path(asset_path(model))
        import openvino as ov

        shape = [d.get_length() for d in ov.Core().read_model(src).inputs[0].get_partial_shape()]
        x = np.random.default_rng(0).standard_normal((subset, *shape)).astype(np.float32)
    for i in range(copies):
        shutil.copy(src, root / "models" / f"m{i:02d}.xml")
        shutil.copy(src.with_suffix(".bin"), root / "models" / f"m{i:02d}.bin")
    np.save(root / "calib.npy", x)
    (root / "batch.toml").write_text(
        f'[defaults]\ndata = "calib.npy"\nsubset_size = {subset}\n\n[[job]]\nmodel = "models/*.xml"\n')
    return root


def _timed(cmd: list[str], **kw) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def throughput(copies: int, subset: int, model: str | None) -> None:
    root = _workspace(copies, subset, model)
    cores = len(os.sched_getaffinity(0))
    rows = []
    models = sorted((root / "models").glob("*.xml"))
    loop = " && ".join(f"{' '.join(OVQ)} quantize {m} -o {root}/loop/{m.stem}.xml --data {root}/calib.npy "
                       f"--subset-size {subset} -q > /dev/null" for m in models)
    rows.append(("shell loop of `ovq quantize`", *_timed(["bash", "-c", loop])))
    script = (
        "import sys, numpy as np, ovq\nfrom pathlib import Path\nroot = Path(sys.argv[1])\n"
        "x = np.load(root / 'calib.npy')\n"
        "for m in sorted((root / 'models').glob('*.xml')):\n"
        f"    q = ovq.quantize(str(m), list(x), subset_size={subset}, progress=False)\n"
        "    ovq.save_model(q, root / 'seq' / (m.stem + '.xml'))\n")
    rows.append(("`ovq.quantize` one after another, one process", *_timed([sys.executable, "-c", script, str(root)])))
    for jobs in (1, 2):
        rows.append((f"`ovq batch --jobs {jobs}`",
                     *_timed([*OVQ, "batch", str(root / "batch.toml"), "-o", str(root / f"out{jobs}"),
                              "--jobs", str(jobs)])))
    print(f"{copies} copies of {model or 'the digits CNN'}, subset_size {subset}, {cores} cores, "
          f"load average before: {os.getloadavg()[0]:.1f}")
    print("| run | wall s | models/hour | CPU busy |")
    print("|---|---:|---:|---:|")
    for name, wall, cpu in rows:
        print(f"| {name} | {wall:.1f} | {copies * 3600 / wall:.0f} | {cpu / (wall * cores):.0%} |")
    base = rows[0][1]
    print("speed-up over the shell loop: " + ", ".join(f"{name}: {base / wall:.2f}x" for name, wall, _ in rows[1:]))
    shutil.rmtree(root, ignore_errors=True)


def _digests(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("int8.*"))}


def _journal(out: Path) -> dict[str, tuple]:
    db = sqlite3.connect(out / "journal.sqlite")
    try:
        return {r[0]: r[1:] for r in db.execute("SELECT output, status, finished FROM jobs")}
    finally:
        db.close()


def kills(trials: int, copies: int, seed: int) -> None:
    import psutil

    rng = random.Random(seed)
    root = _workspace(copies, 64)
    manifest = root / "batch.toml"
    cmd = [*OVQ, "batch", str(manifest), "-o"]
    subprocess.run([*cmd, str(root / "ref"), "--jobs", "2"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    expected = _digests(root / "ref")
    out = root / "out"
    counts = {"corrupted_or_mismatched": 0, "recomputed": 0, "leftover_files": 0, "unreadable_journal": 0,
              "driver_kills": 0, "worker_kills": 0, "not_done_after_rerun": 0}
    for trial in range(trials):
        proc = subprocess.Popen([*cmd, str(out), "--jobs", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        delay = rng.uniform(0.5, 12.0)
        target = rng.choice(["driver", "worker"])
        time.sleep(delay)
        children = psutil.Process(proc.pid).children() if proc.poll() is None else []
        if target == "worker" and children:
            rng.choice(children).send_signal(signal.SIGKILL)
            counts["worker_kills"] += 1
            proc.wait()
        elif proc.poll() is None:
            target = "driver"  # (also when no worker had started yet)
            proc.send_signal(signal.SIGKILL)
            counts["driver_kills"] += 1
            proc.wait()
            psutil.wait_procs(children, timeout=10)
        else:
            target = "nothing (the run had finished)"
        try:
            before = _journal(out)
        except sqlite3.Error:
            counts["unreadable_journal"] += 1
            before = {}
        # Finished before the rerun: done in the journal with its outputs intact (the
        # bench deletes some outputs between trials; those jobs must run again).
        intact = _digests(out)
        finished_ok = {o: f for o, (status, f) in before.items() if status == "done" and all(
            intact.get(k) == v for k, v in expected.items() if k.startswith(Path(o).parent.name + "/"))}
        subprocess.run([*cmd, str(out), "--jobs", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        after = _journal(out)
        counts["recomputed"] += sum(1 for o, f in finished_ok.items() if after[o][1] != f)
        counts["not_done_after_rerun"] += sum(1 for status, _ in after.values() if status != "done")
        got = _digests(out)
        counts["corrupted_or_mismatched"] += sum(1 for k, v in expected.items() if got.get(k) != v)
        counts["leftover_files"] += sum(1 for p in out.rglob("*")
                                        if p.name.startswith(".ovq-staging-") or p.name.endswith(".tmp"))
        print(f"trial {trial + 1}: killed the {target} after {delay:.1f} s; "
              f"{len(finished_ok)} finished before the rerun", flush=True)
        for xml in rng.sample(sorted(out.rglob("int8.xml")), k=max(1, copies // 3)):
            xml.unlink()
    print(f"{trials} trials, {copies} jobs each: {counts}")
    shutil.rmtree(root, ignore_errors=True)


def ray_nodes(copies: int, subset: int) -> None:
    """The same manifest on the local engine (--jobs 2), a local Ray (2 CPUs) and a
    two-node ray.cluster_utils.Cluster on this machine (1 CPU per node)."""
    import ray
    from ray.cluster_utils import Cluster

    import ovq.batch

    root = _workspace(copies, subset)
    rows = []
    t0 = time.perf_counter()
    ovq.batch.run(root / "batch.toml", root / "local", jobs=2, progress=False)
    rows.append(("local engine, --jobs 2", time.perf_counter() - t0, 0.0))
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    t1 = time.perf_counter()
    ovq.batch.run(root / "batch.toml", root / "ray", engine="ray", progress=False)
    rows.append(("local Ray, 2 CPUs", time.perf_counter() - t1, t1 - t0))
    ray.shutdown()
    t0 = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    t1 = time.perf_counter()
    result = ovq.batch.run(root / "batch.toml", root / "cluster", engine="ray", progress=False)
    rows.append(("two-node Ray cluster, 1 CPU per node", time.perf_counter() - t1, t1 - t0))
    nodes = len({r.node for r in result.records})
    ray.shutdown()
    cluster.shutdown()
    same = _digests(root / "local") == _digests(root / "ray") == _digests(root / "cluster")
    print(f"{copies} copies of the digits CNN, subset_size {subset}; outputs identical across engines: {same}; "
          f"jobs ran on {nodes} nodes of the cluster")
    print("| run | wall s (batch) | Ray start s | models/hour |")
    print("|---|---:|---:|---:|")
    for name, wall, start in rows:
        print(f"| {name} | {wall:.1f} | {start:.1f} | {copies * 3600 / wall:.0f} |")
    shutil.rmtree(root, ignore_errors=True)


def shards(count: int, subset: int, repeats: int) -> None:
    """One EfficientNet-Lite0 job unsharded and with --shards ``count``; see the module docstring."""
    import statistics as stats

    import ovq.batch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from ovq_testing.assets import asset_path, efficientnet_crops

    root = Path(tempfile.mkdtemp(prefix="ovq-bench-shards-"))
    np.save(root / "crops.npy", np.asarray(efficientnet_crops(subset))[:, None])
    (root / "batch.toml").write_text(f'[[job]]\nmodel = "{asset_path("efficientnet_lite0")}"\n'
                                     f'data = "crops.npy"\nsubset_size = {subset}\n')
    cores = len(os.sched_getaffinity(0))
    setups = [("unsharded, --jobs 1", 1, None), (f"unsharded, --jobs {count}", count, None),
              (f"--shards {count} --jobs {count}", count, count)]
    rows = []
    digests = {}
    for name, jobs, k in setups:
        walls, loads, tasks, cpus = [], [], [], []
        for r in range(repeats):
            out = root / f"out-{jobs}-{k}-{r}"
            load = os.getloadavg()[0]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            result = ovq.batch.run(root / "batch.toml", out, jobs=jobs, shards=k, progress=False)
            walls.append(time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the workers, reaped when the engine closed
            cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            loads.append((load, os.getloadavg()[0]))
            record = result.records[0]
            assert record.status == "done", result.table()
            summary = json.loads((out / "summary.json").read_text())["jobs"][0]
            phases = summary.get("phases", {})
            tasks.append(phases.get("statistics_tasks", phases.get("statistics", 0.0)))
            digests[(name, r)] = _digests(out)
            shutil.rmtree(out, ignore_errors=True)
        rows.append((name, stats.median(walls), walls, loads, stats.median(tasks), stats.median(cpus)))
    same = len({tuple(sorted(d.items())) for d in digests.values()}) == 1
    print(f"EfficientNet-Lite0, subset_size {subset}, {cores} cores, {repeats} run(s) each; "
          f"outputs identical across all runs: {same}")
    print("| run | wall s (median) | runs | statistics s | workers' CPU s | load average before -> after "
          "| speed vs unsharded --jobs 1 |")
    print("|---|---:|---|---:|---:|---|---:|")
    base = rows[0][1]
    for name, wall, walls, loads, stat, cpu in rows:
        print(f"| {name} | {wall:.1f} | {', '.join(f'{w:.1f}' for w in walls)} | {stat:.1f} | {cpu:.1f} | "
              f"{', '.join(f'{a:.1f}->{b:.1f}' for a, b in loads)} | {base / wall:.2f}x |")
    print("statistics s: the statistics phase of the unsharded job; for the sharded one, the slowest "
          "statistics task (its read and placement included)")
    shutil.rmtree(root, ignore_errors=True)


def compress(copies: int) -> None:
    """N EfficientNet-Lite0 compress jobs; see the module docstring."""
    import ovq.batch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from ovq_testing.assets import asset_path

    root = Path(tempfile.mkdtemp(prefix="ovq-bench-compress-"))
    src = Path(asset_path("efficientnet_lite0"))
    (root / "models").mkdir()
    for i in range(copies):
        shutil.copy(src, root / "models" / f"m{i:02d}.xml")
        shutil.copy(src.with_suffix(".bin"), root / "models" / f"m{i:02d}.bin")
    (root / "batch.toml").write_text('[[job]]\nmodel = "models/*.xml"\nkind = "compress"\n')
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    result = ovq.batch.run(root / "batch.toml", root / "out", jobs=2, progress=False)
    wall = time.perf_counter() - t0
    print(f"{copies} EfficientNet-Lite0 compress jobs (int8_asym), --jobs 2: {wall:.1f} s wall, "
          f"load average {load:.1f} -> {os.getloadavg()[0]:.1f}")
    print("| job | seconds | in compress_weights s | MiB before | MiB after | weights per precision |")
    print("|---|---:|---:|---:|---:|---|")
    for r in result.records:
        print(f"| {r.name} | {r.seconds:.1f} | {r.phases.get('compress', 0.0):.2f} | {r.size_before / 2**20:.2f} | "
              f"{r.size_after / 2**20:.2f} | {r.precision_text()} |")
    shutil.rmtree(root, ignore_errors=True)


ZOO_MODELS = ("digits", "resnet_like", "efficientnet_lite0", "minilm")
#: (label, options) of the zoo bench; ``subset_size`` ``None`` = the smaller subset of the model.
ZOO_OPTIONS = (("default", {}), ("mixed", {"preset": "mixed"}), ("subset", {"subset_size": None}),
               ("overflow", {"overflow_fix": "first_layer"}))
#: ovq options the NNCF script maps, and how (anything else: NNCF's default).
_NNCF_EQUIVALENT = ("subset_size", "preset", "model_type", "overflow_fix")
PY = [sys.executable, "-P"]  # -P: a checkout's bare ovq/ (no extension) cannot shadow the installed package

_INPROCESS = """
import json, sys, time, numpy as np, ovq
from pathlib import Path
root = Path(sys.argv[1])
figures = []
for job in json.loads((root / "jobs.json").read_text()):
    t0 = time.perf_counter()
    data = np.load(root / job["data"])
    samples = ([{k: data[k][i] for k in data.files} for i in range(len(data[data.files[0]]))]
               if job["data"].endswith(".npz") else list(data))
    q, report = ovq.quantize(job["model"], samples, progress=False, return_report=True, **job["options"])
    out = root / "inprocess" / job["name"] / "int8.xml"
    out.parent.mkdir(parents=True, exist_ok=True)
    ovq.save_model(q, out)
    figures.append({"name": job["name"], "seconds": time.perf_counter() - t0, "phases": report.phases})
(root / "inprocess.json").write_text(json.dumps(figures))
"""

_NNCF_JOB = """
import json, logging, sys, numpy as np, nncf, openvino as ov
from pathlib import Path
from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix
logging.getLogger("nncf").setLevel(logging.ERROR)
root, job = Path(sys.argv[1]), json.loads(sys.argv[2])
opts = job["options"]
model = ov.Core().read_model(job["model"])
data = np.load(root / job["data"])
samples = ([{k: data[k][i] for k in data.files} for i in range(len(data[data.files[0]]))]
           if job["data"].endswith(".npz") else list(data))
kwargs = {"subset_size": opts.get("subset_size", 300)}
if "preset" in opts:
    kwargs["preset"] = nncf.QuantizationPreset(opts["preset"])
if "model_type" in opts:
    kwargs["model_type"] = nncf.ModelType(opts["model_type"])
if "overflow_fix" in opts:
    fix = {"first_layer": OverflowFix.FIRST_LAYER, "enable": OverflowFix.ENABLE, "disable": OverflowFix.DISABLE}
    kwargs["advanced_parameters"] = AdvancedQuantizationParameters(overflow_fix=fix[opts["overflow_fix"]])
q = nncf.quantize(model, nncf.Dataset(samples), **kwargs)
out = root / "nncf" / job["name"] / "int8.xml"
out.parent.mkdir(parents=True, exist_ok=True)
ov.save_model(q, str(out), compress_to_fp16=False)
"""


def _zoo_workspace(models: tuple[str, ...]) -> tuple[Path, list[dict]]:
    """The zoo's calibration files, its 16 jobs (``jobs.json``) and their manifest (``batch.toml``)."""
    import importlib.util

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from ovq_testing.assets import asset_path

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/quantize.py imports bench/memory.py
    spec = importlib.util.spec_from_file_location("ovq_bench_quantize", Path(__file__).with_name("quantize.py"))
    bq = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bq)

    root = Path(tempfile.mkdtemp(prefix="ovq-bench-zoo-"))
    (root / "data").mkdir()
    jobs, lines = [], []
    for model in models:
        samples = bq.calibration(model)
        if isinstance(samples[0], dict):  # MiniLM: one stack per input name
            data = f"data/{model}.npz"
            np.savez(root / data, **{k: np.stack([s[k] for s in samples]) for k in samples[0]})
        else:
            data = f"data/{model}.npy"
            np.save(root / data, np.stack(samples))
        for label, options in ZOO_OPTIONS:
            opts = dict(options)
            if "subset_size" in opts:
                opts["subset_size"] = min(100, len(samples) // 2)
            if model == "minilm":
                opts["model_type"] = "transformer"
            job = {"name": f"{model}-{label}", "model": str(asset_path(model)), "data": data, "options": opts}
            jobs.append(job)
            lines += ["[[job]]", f'name = "{job["name"]}"', f'model = "{job["model"]}"', f'data = "{data}"',
                      *(f"{k} = {json.dumps(v)}" for k, v in opts.items()), ""]
    (root / "jobs.json").write_text(json.dumps(jobs, indent=1))
    (root / "batch.toml").write_text('[defaults]\noutput = "{outdir}/{name}/int8.xml"\n\n' + "\n".join(lines))
    return root, jobs


def _timed_all(cmds: list[list[str]]) -> tuple[float, float]:
    """Wall seconds of running ``cmds`` one after another, and their (and their children's) CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    for cmd in cmds:
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tempfile.gettempdir())
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd[:4])} ... failed:\n{proc.stderr.decode(errors='replace')[-3000:]}")
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def zoo(skip_nncf: bool, only: list[str] | None, models: tuple[str, ...] = ZOO_MODELS) -> None:
    """The 16 zoo jobs four ways; see the module docstring."""
    root, jobs = _zoo_workspace(models)
    cores = len(os.sched_getaffinity(0))
    runs = {
        "inprocess": ("(a) `ovq.quantize` one after another, one process",
                      [[*PY, "-c", _INPROCESS, str(root)]]),
        "batch2": ("(b) `ovq batch --jobs 2`",
                   [[*PY, "-m", "ovq.cli", "batch", str(root / "batch.toml"), "-o", str(root / "batch2"), "--jobs", "2"]]),
        "batch1": ("(c) `ovq batch --jobs 1`",
                   [[*PY, "-m", "ovq.cli", "batch", str(root / "batch.toml"), "-o", str(root / "batch1"), "--jobs", "1"]]),
        "nncf": ("(d) loop of `nncf.quantize` scripts, one process per job",
                 [[*PY, "-c", _NNCF_JOB, str(root), json.dumps(job)] for job in jobs]),
    }
    chosen = [k for k in runs if (only is None or k in only) and not (skip_nncf and k == "nncf")]
    rows = {}
    for key in chosen:
        load = os.getloadavg()[0]
        wall, cpu = _timed_all(runs[key][1])
        rows[key] = (wall, cpu, load, os.getloadavg()[0])
        print(f"{key}: {wall:.1f} s, load average {load:.1f} -> {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
    n = len(jobs)
    unmapped = sorted({k for job in jobs for k in job["options"] if k not in _NNCF_EQUIVALENT})
    print(f"{n} jobs ({', '.join(models)} x {', '.join(label for label, _ in ZOO_OPTIONS)}), {cores} cores")
    if "nncf" in rows:
        print("NNCF scripts: every option has an NNCF equivalent" if not unmapped else
              f"NNCF scripts: left at NNCF's default (no equivalent): {', '.join(unmapped)}")
    print("| run | wall s | models/hour | CPU busy | load average before -> after |")
    print("|---|---:|---:|---:|---|")
    for key, (wall, cpu, la, lb) in rows.items():
        print(f"| {runs[key][0]} | {wall:.1f} | {n * 3600 / wall:.0f} | {cpu / (wall * cores):.0%} | {la:.1f} -> {lb:.1f} |")
    for key in ("inprocess", "batch2", "batch1"):
        if key not in rows:
            continue
        parts = []
        if "inprocess" in rows and key != "inprocess":
            parts.append(f"wall / in-process wall {rows[key][0] / rows['inprocess'][0]:.2f}")
        if "nncf" in rows:
            parts.append(f"models per hour / nncf loop's {rows['nncf'][0] / rows[key][0]:.2f}x")
        if parts:
            print(f"{runs[key][0]}: " + ", ".join(parts))
        summary = (json.loads((root / "inprocess.json").read_text()) if key == "inprocess"
                   else json.loads((root / key / "summary.json").read_text())["jobs"])
        phases: dict[str, float] = {}
        for job in summary:
            for phase, seconds in (job.get("phases") or {}).items():
                phases[phase] = phases.get(phase, 0.0) + seconds
        print(f"  {key}: sum of job seconds {sum(j.get('seconds') or 0 for j in summary):.1f}, of which phases "
              + ", ".join(f"{k} {v:.1f}" for k, v in phases.items()))
    shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--copies", type=int, default=8)
    t.add_argument("--subset-size", type=int, default=300)
    t.add_argument("--model", default=None, help="a test asset (resnet_like, efficientnet_lite0) instead of digits")
    k = sub.add_parser("kills")
    k.add_argument("--trials", type=int, default=20)
    k.add_argument("--copies", type=int, default=6)
    k.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("ray")
    r.add_argument("--copies", type=int, default=8)
    r.add_argument("--subset-size", type=int, default=300)
    s = sub.add_parser("shards")
    s.add_argument("--shards", type=int, default=2)
    s.add_argument("--subset-size", type=int, default=300)
    s.add_argument("--repeats", type=int, default=2)
    c = sub.add_parser("compress")
    c.add_argument("--copies", type=int, default=4)
    z = sub.add_parser("zoo")
    z.add_argument("--skip-nncf", action="store_true", help="leave out the loop of nncf.quantize scripts")
    z.add_argument("--only", nargs="+", choices=("inprocess", "batch2", "batch1", "nncf"), default=None)
    z.add_argument("--models", nargs="+", choices=ZOO_MODELS, default=ZOO_MODELS,
                   help="a part of the zoo (a quick check; the issue's goals are about all four)")
    args = parser.parse_args()
    if args.what == "zoo":
        zoo(args.skip_nncf, args.only, tuple(args.models))
    elif args.what == "compress":
        compress(args.copies)
    elif args.what == "shards":
        shards(args.shards, args.subset_size, args.repeats)
    elif args.what == "ray":
        ray_nodes(args.copies, args.subset_size)
    elif args.what == "throughput":
        throughput(args.copies, args.subset_size, args.model)
    else:
        kills(args.trials, args.copies, args.seed)


if __name__ == "__main__":
    main()
