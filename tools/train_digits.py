#!/usr/bin/env python
"""Train the shipped digits demo model and write it to ``ovq/data/digits/``.

Deterministic recipe (docs: /work/shared/reference/test-assets.md section 3.1):

* Data: ``sklearn.datasets.load_digits()`` (1797 8x8 images, 10 classes);
  ``X = images / 16`` as float32, shape (N, 1, 8, 8);
  ``train_test_split(test_size=0.25, random_state=0, stratify=y)`` -> 1347 train / 450 test.
* Seeds: ``torch.manual_seed(0)``, ``np.random.seed(0)``, ``torch.set_num_threads(2)``.
* Net (~100k params): Conv 1->32 (3x3, pad 1) + BN + ReLU -> Conv 32->64 + BN + ReLU
  -> MaxPool 2 -> Conv 64->128 + BN + ReLU -> global average pool -> FC 128->64 -> ReLU
  -> FC 64->10.
* Adam lr 3e-3; OneCycleLR max_lr 1e-2 over 20 * ceil(1347/64) = 440 steps (stepped per
  batch); 20 epochs, batch 64, a fresh ``randperm`` every epoch; per batch a random
  circular shift (dy, dx) in {-1, 0, 1}^2 drawn from numpy, applied with ``torch.roll``
  on H and W; cross-entropy loss.
* Convert: ``openvino.convert_model(model, example_input=torch.zeros(1, 1, 8, 8),
  input=[-1, 1, 8, 8])``; save with ``compress_to_fp16=False`` (FP32 weights).

Outputs (in ``--out``, default ``ovq/data/digits`` next to this repository's ``tools/``):

* ``digits.xml`` / ``digits.bin``: the FP32 OpenVINO IR. Input: pixels / 16 as float32,
  shape [?, 1, 8, 8]; output: 10 logits.
* ``digits_test.npz``: the 450 held-out test images, ``x`` uint8 raw pixels 0..16 of
  shape (450, 1, 8, 8) and ``y`` uint8 labels.
* ``digits_calib.npz``: the first 300 training images (same encoding) for calibration.

Requires torch==2.13.0 (CPU), scikit-learn, openvino. Run::

    python tools/train_digits.py            # writes ovq/data/digits/
    python tools/train_digits.py --check    # train + compare, write nothing
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys
import time

import numpy as np

EXPECTED_ACCURACY = 0.9778
N_CALIB = 300
EPOCHS = 20
BATCH = 64


def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return the raw (uint8 0..16) train/test split of sklearn's digits.

    Returns:
        ``(x_train, x_test, y_train, y_test)``; images are uint8 of shape (N, 1, 8, 8).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    raw = digits.images.astype(np.uint8).reshape(-1, 1, 8, 8)
    assert np.array_equal(raw.astype(np.float64), digits.images.reshape(-1, 1, 8, 8))
    y = digits.target.astype(np.int64)
    # Split the float32 inputs exactly as the recipe states; split indices the same way
    # so the stored raw pixels correspond one to one.
    idx = np.arange(len(y))
    idx_train, idx_test = train_test_split(idx, test_size=0.25, random_state=0, stratify=y)
    return raw[idx_train], raw[idx_test], y[idx_train], y[idx_test]


def build_net():
    """Return the digits CNN (untrained)."""
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1),
        nn.BatchNorm2d(128),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(128, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def train(x_train: np.ndarray, y_train: np.ndarray):
    """Train the CNN with the fixed recipe.

    Args:
        x_train: float32 inputs (N, 1, 8, 8), pixels / 16.
        y_train: int64 labels.

    Returns:
        The trained model in eval mode.
    """
    import torch
    import torch.nn.functional as F

    xt = torch.from_numpy(x_train)
    yt = torch.from_numpy(y_train)
    model = build_net()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    steps_per_epoch = math.ceil(len(xt) / BATCH)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=1e-2, total_steps=EPOCHS * steps_per_epoch
    )
    model.train()
    for _ in range(EPOCHS):
        perm = torch.randperm(len(xt))
        for b in range(steps_per_epoch):
            sel = perm[b * BATCH : (b + 1) * BATCH]
            xb, yb = xt[sel], yt[sel]
            dy, dx = np.random.randint(-1, 2, size=2)
            xb = torch.roll(xb, shifts=(int(dy), int(dx)), dims=(2, 3))
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return model


def main(argv: list[str] | None = None) -> int:
    """Train, convert, check and write the demo model. Returns the exit code."""
    repo = pathlib.Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=pathlib.Path, default=repo / "ovq" / "data" / "digits")
    ap.add_argument("--check", action="store_true", help="train and verify, write nothing")
    args = ap.parse_args(argv)

    import openvino as ov
    import torch

    torch.manual_seed(0)
    np.random.seed(0)
    torch.set_num_threads(2)

    raw_train, raw_test, y_train, y_test = load_data()
    x_train = (raw_train.astype(np.float32) / 16).astype(np.float32)
    x_test = (raw_test.astype(np.float32) / 16).astype(np.float32)
    print(f"train {x_train.shape}, test {x_test.shape}")

    t0 = time.perf_counter()
    model = train(x_train, y_train)
    print(f"trained in {time.perf_counter() - t0:.1f} s; "
          f"{sum(p.numel() for p in model.parameters())} params")

    with torch.no_grad():
        torch_logits = model(torch.from_numpy(x_test)).numpy()
    acc_torch = float((torch_logits.argmax(1) == y_test).mean())

    ov_model = ov.convert_model(model, example_input=torch.zeros(1, 1, 8, 8), input=[-1, 1, 8, 8])
    ov_model.inputs[0].get_tensor().set_names({"input"})
    ov_model.outputs[0].get_tensor().set_names({"logits"})
    core = ov.Core()
    compiled = core.compile_model(ov_model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    ov_logits = compiled(x_test)[0]
    acc_ov = float((ov_logits.argmax(1) == y_test).mean())
    max_diff = float(np.abs(ov_logits - torch_logits).max())
    print(f"accuracy torch {acc_torch:.4f}, OpenVINO f32 {acc_ov:.4f}, max |diff| {max_diff:.2e}")
    if acc_ov != acc_torch:
        print("ERROR: OpenVINO accuracy differs from torch", file=sys.stderr)
        return 1
    if abs(acc_torch - EXPECTED_ACCURACY) > 5e-5:
        print(f"WARNING: accuracy {acc_torch:.4f} differs from the documented "
              f"{EXPECTED_ACCURACY}", file=sys.stderr)
    if args.check:
        return 0

    out: pathlib.Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov_model, str(out / "digits.xml"), compress_to_fp16=False)
    np.savez_compressed(out / "digits_test.npz", x=raw_test, y=y_test.astype(np.uint8))
    np.savez_compressed(
        out / "digits_calib.npz", x=raw_train[:N_CALIB], y=y_train[:N_CALIB].astype(np.uint8)
    )

    # Re-read what was written and check it reproduces the accuracy.
    reread = core.compile_model(core.read_model(str(out / "digits.xml")), "CPU",
                                {"INFERENCE_PRECISION_HINT": "f32"})
    with np.load(out / "digits_test.npz") as f:
        xs = f["x"].astype(np.float32) / 16
        ys = f["y"]
    acc_file = float((reread(xs)[0].argmax(1) == ys).mean())
    print(f"re-read accuracy {acc_file:.4f}")
    for p in sorted(out.iterdir()):
        print(f"  {p.name}: {p.stat().st_size} bytes")
    return 0 if acc_file == acc_torch else 1


if __name__ == "__main__":
    sys.exit(main())
