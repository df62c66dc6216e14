"""Throughput of the kernels per backend, in GB/s of input read, plus memory bandwidth.

Run: python bench/kernels.py [--repeat N] [--only TEXT] [--threads N]. Prints one table;
ratios are what matter on a shared, noisy machine (``--threads 1`` compares the work per
core, which the load moves less than the parallel speed-up).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ovq.kernels import available_backends, get_kernels


def best(fn, repeat: int, min_time: float = 0.3) -> float:
    """Best of ``repeat`` calls, and of at least ``min_time`` seconds of calls: a kernel
    that runs for 2 ms would otherwise be timed within a 10 ms window, short enough for
    one burst of other work on a shared machine to decide the result."""
    fn()  # warm-up (numba compiles here)
    ts = []
    while len(ts) < repeat or sum(ts) < min_time:
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", default="", help="run the kernels whose title contains this")
    ap.add_argument("--threads", type=int, default=0,
                    help="threads of the native and numba backends (default: all cores)")
    args = ap.parse_args()
    if args.threads:
        import numba

        from ovq.kernels import set_num_threads

        set_num_threads(args.threads)
        numba.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    act = rng.standard_normal((32, 64, 112, 112), dtype=np.float32)
    w = rng.standard_normal((4096, 4096), dtype=np.float32)
    small = act[:4]  # quantiles: 4x64x112x112 per channel
    gb = lambda a: a.nbytes / 1e9  # noqa: E731

    dst = np.empty_like(act)
    copy_t = best(lambda: np.copyto(dst, act), args.repeat)
    bw = 2 * gb(act) / copy_t  # read + write
    print(f"memory bandwidth (numpy copy, read+write): {bw:.1f} GB/s")

    backends = available_backends()
    ks = {b: get_kernels(b) for b in backends}
    il, ih = np.float32(-1.0), np.float32(1.0)
    wh = np.maximum(np.abs(w).max(axis=1), 1e-6).astype(np.float32)  # symmetric per-row range
    wl = -wh
    sat_a = rng.integers(0, 256, (2048, 1152), dtype=np.uint8)  # an EfficientNet-Lite0 1x1 layer
    sat_w = rng.integers(-127, 128, (192, 1152)).astype(np.int8)
    cases = [
        ("minmax per-channel act", lambda k: k.minmax(act, 1), gb(act), None),
        ("minmax per-tensor act", lambda k: k.minmax(act), gb(act), None),
        ("moments per-channel act", lambda k: k.reduce_state(act, 1), gb(act), None),
        ("minmax per-row weights", lambda k: k.minmax(w, 0), gb(w), None),
        ("quantile 1e-4 per-ch (4x64x112x112)", lambda k: k.quantile(small, [1e-4, 1 - 1e-4], 1),
         gb(small), lambda: np.quantile(np.moveaxis(small, 1, 0).reshape(64, -1),
                                        [1e-4, 1 - 1e-4], axis=1)),
        ("histogram 2048 bins per-tensor", lambda k: k.histogram(
            act, __import__("ovq.kernels").kernels.Histogram(-5.0, 5.0, 2048)), gb(act), None),
        ("fake_quantize per-tensor act", lambda k: k.fake_quantize(act, il, ih, il, ih, 256),
         gb(act), None),
        ("quantize weights int8 per-row", lambda k: k.quantize(w, wl, wh, 255, 0, offset=-127),
         gb(w), None),
        ("dequantize weights per-row", None, gb(w), None),
        # "GB/s" here: G u8 x s8 products examined per second (1 byte each)
        ("pair_saturation 2048x1152 x 192 (G prod/s)", lambda k: k.pair_saturation(sat_a, sat_w),
         sat_a.shape[0] * sat_a.shape[1] * sat_w.shape[0] / 1e9, None),
    ]
    w16 = w.astype(np.float16)  # weight compression reads f16 weights (OpenVINO LLM IRs)
    cases += [
        ("compress int8_asym per-row f16", lambda k: k.compress_groups(w16, 8, sym=False), gb(w16), None),
        ("compress int4_asym g128 f16", lambda k: k.compress_groups(w16, 4, sym=False, group_size=128),
         gb(w16), None),
        ("compress int4_sym g128 f16", lambda k: k.compress_groups(w16, 4, sym=True, group_size=128),
         gb(w16), None),
        ("int8_asym_error per-row f16", lambda k: k.int8_asym_error(w16), gb(w16), None),
    ]
    q8 = ks["numpy"]._m.quantize(w, wl, wh, 255, 0, offset=-127)
    scale = ((wh - wl) / 254).astype(np.float32)
    at = next(i for i, c in enumerate(cases) if c[0] == "dequantize weights per-row")
    cases[at] = ("dequantize weights per-row", lambda k: k.dequantize(q8, scale, 0, 0), gb(q8), None)

    hdr = f"{'kernel':38s}" + "".join(f"{b + ' GB/s':>14s}" for b in backends)
    hdr += f"{'nat/numpy':>10s}{'nat/numba':>10s}{'%bw':>6s}"
    print(hdr)
    for title, fn, size, baseline in cases:
        if args.only not in title:
            continue
        res = {}
        for b in backends:
            res[b] = size / best(lambda: fn(ks[b]), args.repeat if b != "numpy" else 2)
        line = f"{title:38s}" + "".join(f"{res[b]:14.2f}" for b in backends)
        if "native" in res:
            line += f"{res['native'] / res['numpy']:10.1f}"
            line += f"{res['native'] / res['numba']:10.2f}" if "numba" in res else " " * 10
            line += f"{100 * res['native'] / bw:6.0f}"
        print(line)
        if baseline is not None and "native" in res:
            t = best(baseline, 2)
            print(f"{'  np.quantile baseline':38s}{size / t:14.2f}  native/np.quantile = "
                  f"{res['native'] / (size / t):.1f}x")


if __name__ == "__main__":
    main()
