"""What ``ovq batch --report`` adds to a batch job: the same jobs with and without reports.

Usage::

    python bench/batch_reports.py [--model digits|efficientnet_lite0] [--copies 4] [--subset-size 300] [--repeats 2]

Writes ``--copies`` quantize jobs of one model (the digits CNN with its calibration
digits, or the EfficientNet-Lite0 test asset with its deterministic crops) into a
manifest, then runs ``ovq.batch.run(..., jobs=1, force=True)`` without and with
``report=True``, alternating, ``--repeats`` times each (one worker: the jobs run one
after another, the first pays the worker's start). Prints per run the wall time, the
median job time (journal seconds, the worker's start excluded by leaving out the first
job), the median ``report`` phase and ``audit``-inclusive job time, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _workspace(root: Path, model: str, copies: int, subset: int) -> Path:
    if model == "digits":
        from ovq.data import demo_model_path, load_demo_data

        src = demo_model_path()
        x, _ = load_demo_data("calib")
        data = x[:subset].astype(np.float32)
    else:
        from ovq_testing import assets

        src = Path(assets.asset_path(model))
        data = np.asarray(assets.efficientnet_crops(max(subset, 600))[:subset])[:, None]
    np.save(root / "calib.npy", data)
    for k in range(copies):
        shutil.copy(src, root / f"m{k}.xml")
        shutil.copy(src.with_suffix(".bin"), root / f"m{k}.bin")
    jobs = "".join(f'[[job]]\nmodel = "m{k}.xml"\noutput = "{{outdir}}/m{k}/int8.xml"\n' for k in range(copies))
    (root / "batch.toml").write_text(f'[defaults]\ndata = "calib.npy"\nsubset_size = {subset}\n{jobs}')
    return root / "batch.toml"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="digits", choices=["digits", "efficientnet_lite0"])
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--subset-size", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    import ovq.batch

    with tempfile.TemporaryDirectory() as tmp:
        manifest = _workspace(Path(tmp), args.model, args.copies, args.subset_size)
        print(f"{args.model}: {args.copies} jobs, subset {args.subset_size}, one worker")
        print("run      wall s  job s (median, 2nd job on)  report s (median)  load before -> after")
        for _ in range(args.repeats):
            for report in (False, True):
                load = os.getloadavg()[0]
                t0 = time.perf_counter()
                result = ovq.batch.run(manifest, Path(tmp) / ("with" if report else "without"), jobs=1, force=True,
                                       report=report, progress=False, stream=open(os.devnull, "w"))
                wall = time.perf_counter() - t0
                jobs = json.loads(result.summary_json.read_text())["jobs"]
                assert all(j["status"] == "done" for j in jobs), result.table()
                later = jobs[1:] or jobs
                job_s = statistics.median(j["seconds"] for j in later)
                rep = [j["phases"]["report"] for j in later if "report" in j["phases"]]
                print(f"{'report' if report else 'plain':8s} {wall:6.1f}  {job_s:26.2f}  "
                      f"{statistics.median(rep) if rep else float('nan'):17.2f}  {load:.1f} -> {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
