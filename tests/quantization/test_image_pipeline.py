"""ImagePipeline: POT's OpenCV read/resize, the Accuracy Checker's steps, and the
Pillow fallback, checked against OpenCV and Pillow themselves."""

from __future__ import annotations

import numpy as np
import pytest

from ovq.errors import CalibrationDataError
from ovq.quantization.data_sources import load_calibration_data
from ovq.quantization.image_pipeline import Crop, ImagePipeline, Normalize, Resize, SwapChannels

cv2 = pytest.importorskip("cv2")
Image = pytest.importorskip("PIL.Image")


@pytest.fixture
def photo(tmp_path):
    """A 40x30 RGB PNG with structure (so resize filters differ)."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    path = tmp_path / "img.png"
    Image.fromarray(rgb).save(path)
    return path, rgb


def test_opencv_reader_and_resize_match_opencv(photo):
    path, rgb = photo
    out = ImagePipeline("opencv", (Crop(central_fraction=0.875), Resize())).load(path, size=(16, 12))
    ref = cv2.imread(str(path))
    ref = ref[(30 - 26) // 2:(30 - 26) // 2 + 26, (40 - 35) // 2:(40 - 35) // 2 + 35]  # int(30*.875), int(40*.875)
    np.testing.assert_array_equal(out, cv2.resize(ref, (16, 12)))
    np.testing.assert_array_equal(cv2.imread(str(path)), rgb[:, :, ::-1])  # BGR


def test_pillow_resize_differs_from_opencv_on_downscale(photo):
    path, _ = photo
    cv = ImagePipeline("opencv", (Resize(backend="opencv"),)).load(path, size=(10, 7)).astype(int)
    pil = ImagePipeline("opencv", (Resize(backend="pillow"),)).load(path, size=(10, 7)).astype(int)
    assert np.abs(cv - pil).max() > 10  # the difference POT configs must not have


def test_accuracy_checker_steps(photo):
    path, rgb = photo
    pipe = ImagePipeline("pillow", (SwapChannels(), Resize(20, 20, "greater", "BILINEAR", "pillow"), Crop(16, 16),
                                    Normalize((1.0, 2.0, 3.0), (2.0, 2.0, 2.0))))
    out = pipe.load(path, size=(16, 16))
    # greater: the smaller side (height 30) becomes 20, the width keeps the ratio: int(20 * 40 / 30) = 26
    ref = np.asarray(Image.fromarray(rgb[:, :, ::-1].copy()).resize((26, 20), Image.Resampling.BILINEAR))
    ref = ref[2:18, 5:21].astype(np.float32)
    np.testing.assert_allclose(out, (ref - [1, 2, 3]) / 2)
    assert Resize(224, 224, "greater").target(640, 480, (0, 0)) == (298, 224)
    assert Resize(224, 224, "fit_to_window").target(640, 480, (0, 0)) == (224, 168)


def test_crop_larger_than_the_image_is_an_error(photo):
    path, _ = photo
    with pytest.raises(CalibrationDataError, match="a 64x64 crop does not fit the 40x30 image"):
        ImagePipeline("opencv", (Crop(64, 64),)).load(path, size=(64, 64))


def test_load_calibration_data_with_a_pipeline(photo, tmp_path):
    path, _ = photo
    src = load_calibration_data(tmp_path, [("x", [1, 3, 12, 16], np.float32)],
                                image_pipeline=ImagePipeline("opencv", (Resize(),)))
    sample = src[0]["x"]
    assert sample.shape == (1, 3, 12, 16) and sample.dtype == np.float32
    np.testing.assert_array_equal(sample[0].transpose(1, 2, 0), cv2.resize(cv2.imread(str(path)), (16, 12)))
    wrong = load_calibration_data(tmp_path, [("x", [1, 3, 12, 16], np.float32)],
                                  image_pipeline=ImagePipeline("opencv", (Resize(8, 8),)))
    with pytest.raises(CalibrationDataError, match="gives a 8x8 image with 3 channel.*takes 16x12"):
        wrong[0]


def test_fallback_without_opencv_uses_pillow_and_warns(photo, monkeypatch, caplog):
    import ovq.quantization.image_pipeline as ip

    path, rgb = photo
    monkeypatch.setattr(ip, "opencv", lambda: None)
    monkeypatch.setattr(ip, "_warned", set())
    with caplog.at_level("WARNING", logger="ovq.quantization"):
        out = ImagePipeline("opencv", ()).load(path, size=(40, 30))
    np.testing.assert_array_equal(out, rgb[:, :, ::-1])  # still BGR, as OpenCV would give
    assert "OpenCV is not installed" in caplog.text
