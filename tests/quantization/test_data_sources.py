"""``load_calibration_data``: image folders and NumPy files as model inputs, and every error path."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from ovq.errors import CalibrationDataError, OvqError
from ovq.quantization.data_sources import CalibrationSource, ModelInput, load_calibration_data

F32 = np.float32
IMAGE_1X3 = [("data", [1, 3, 4, 6], F32)]


# ----------------------------------------------------------------------------- helpers

@pytest.fixture
def pil():
    return pytest.importorskip("PIL.Image")


def save_png(pil, path, rgb, size=(10, 8)):
    """A solid ``size`` = (width, height) image of color ``rgb``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pil.fromarray(np.full((size[1], size[0], 3), rgb, np.uint8)).save(path)
    return path


@pytest.fixture
def images(tmp_path, pil):
    """``calib/`` with three PNGs of known colors (one in a subfolder) and clutter to skip."""
    root = tmp_path / "calib"
    save_png(pil, root / "img_1.png", (10, 20, 30))
    save_png(pil, root / "img_0.png", (0, 100, 200))
    save_png(pil, root / "sub" / "img_2.png", (50, 60, 70))
    save_png(pil, root / ".hidden" / "x.png", (1, 1, 1))
    (root / "labels.csv").write_text("a,b\n")
    return root


def error(match):
    return pytest.raises(CalibrationDataError, match=match)


# ----------------------------------------------------------------------------- images

def test_image_folder_sorted_recursive_lazy_nchw(images):
    src = load_calibration_data(images, IMAGE_1X3)
    assert isinstance(src, CalibrationSource) and len(src) == 3
    assert [src.label(i) for i in range(3)] == [str(images / "img_0.png"), str(images / "img_1.png"),
                                                str(images / "sub" / "img_2.png")]
    x = src[1]["data"]
    assert x.shape == (1, 3, 4, 6) and x.dtype == F32
    np.testing.assert_array_equal(x[0, :, 0, 0], [10, 20, 30])
    # Re-iterable, in order.
    assert [s["data"][0, 0, 0, 0] for s in src] == [0, 10, 50]
    assert [s["data"][0, 0, 0, 0] for s in src] == [0, 10, 50]
    assert src[-1]["data"][0, 2, 0, 0] == 70


def test_images_are_read_only_when_indexed(images, monkeypatch, pil):
    opened = []
    real_open = pil.open
    monkeypatch.setattr(pil, "open", lambda p, *a, **k: opened.append(p) or real_open(p, *a, **k))
    src = load_calibration_data(images, IMAGE_1X3)
    assert opened == []
    src[2]
    assert [str(p) for p in opened] == [str(images / "sub" / "img_2.png")]


def test_mean_scale_reverse_in_model_channel_order(images):
    src = load_calibration_data(images, IMAGE_1X3, mean_values="data[30,20,10]", scale_values="[2]",
                                reverse_input_channels=True)
    # RGB (10,20,30) reversed to BGR (30,20,10), minus mean, over scale.
    np.testing.assert_array_equal(src[1]["data"][0, :, 0, 0], [0, 0, 0])
    np.testing.assert_array_equal(src[0]["data"][0, :, 0, 0], [(200 - 30) / 2, (100 - 20) / 2, (0 - 10) / 2])


def test_nhwc_default_and_explicit_layout(images):
    src = load_calibration_data(images, [("data", [1, 4, 6, 3], F32)])
    x = src[0]["data"]
    assert x.shape == (1, 4, 6, 3)
    np.testing.assert_array_equal(x[0, 0, 0], [0, 100, 200])
    # An explicit layout wins over the guess (a 3x3 image with 3 channels is ambiguous).
    y = load_calibration_data(images, [("data", [1, 3, 3, 3], F32)], layout="data(nhwc)")[0]["data"]
    np.testing.assert_array_equal(y[0, 1, 1], [0, 100, 200])


def test_rank3_chw_and_grayscale(images):
    # Channel reversal is a no-op on one channel (POT jobs ask for BGR whatever the input).
    x = load_calibration_data(images, [("img", [1, 5, 5], F32)], reverse_input_channels=True)[1]["img"]
    assert x.shape == (1, 5, 5)
    assert x[0, 0, 0] == pytest.approx(0.299 * 10 + 0.587 * 20 + 0.114 * 30, abs=1)


def test_resize_to_input_size(tmp_path, pil):
    save_png(pil, tmp_path / "a.png", (1, 2, 3), size=(40, 7))
    assert load_calibration_data(tmp_path, [("data", [1, 3, 9, 11], F32)])[0]["data"].shape == (1, 3, 9, 11)


def test_central_fraction_keeps_the_center(tmp_path, pil):
    pixels = np.zeros((20, 20, 3), np.uint8)
    pixels[5:15, 5:15] = 255
    pil.fromarray(pixels).save(tmp_path / "a.png")
    x = load_calibration_data(tmp_path, IMAGE_1X3, central_fraction=0.5)[0]["data"]
    assert np.all(x == 255)


@pytest.mark.parametrize("shape", ["1,3,4,6", "[1,3,4,6]", "data[1,3,4,6]", "(1,3,4,6)", [1, 3, 4, 6],
                                   {"data": (1, 3, 4, 6)}])
def test_input_shape_completes_dynamic_dims(images, shape):
    src = load_calibration_data(images, [("data", [-1, 3, -1, None], F32)], input_shape=shape)
    assert src.inputs == (ModelInput("data", (1, 3, 4, 6), np.dtype(F32)),)
    assert src[0]["data"].shape == (1, 3, 4, 6)


def test_uint8_input_gets_raw_pixels(images):
    x = load_calibration_data(images, [("data", [1, 4, 6, 3], np.uint8)])[0]["data"]
    assert x.dtype == np.uint8
    np.testing.assert_array_equal(x[0, 0, 0], [0, 100, 200])


def test_pattern_list_and_single_image(images, tmp_path):
    assert len(load_calibration_data(str(images / "img_*.png"), IMAGE_1X3)) == 2
    assert len(load_calibration_data(str(images / "**" / "*.png"), IMAGE_1X3)) == 3
    listing = images / "list.txt"
    listing.write_text("# calibration set\nimg_1.png\n\nsub/img_2.png\n")
    src = load_calibration_data(listing, IMAGE_1X3)
    assert [src[i]["data"][0, 0, 0, 0] for i in range(2)] == [10, 50]
    assert len(load_calibration_data(images / "img_0.png", IMAGE_1X3)) == 1


@pytest.mark.parametrize("model_input,options,match", [
    (("data", [1, 3, -1, -1], F32), {}, r"input 'data' of shape \[1,3,\?,\?\]: dimension\(s\) H, W .* are dynamic"),
    (("data", [1, 4, 4, 6], F32), {}, "images give 1 .* or 3 .* channels, layout NHWC says 6"),
    (("data", [2, 3, 4, 6], F32), {}, "batch dimension must be 1 or dynamic"),
    (("data", [3, 4, 6], np.bool_), {}, "images cannot feed a bool input"),
    (("data", [1, 3, 4, 6, 1], F32), {}, "images feed a rank-4"),
    (("data", [1, 3, 4, 6], F32), {"mean_values": "[1,2]"}, "2 values for input 'data' with 3 channel"),
    (("data", [1, 3, 4, 6], F32), {"scale_values": "[1,0,1]"}, "a scale of 0"),
    (("data", [1, 3, 4, 6], F32), {"mean_values": "other[1]"}, "no model input named 'other'"),
    (("data", [1, 3, 4, 6], F32), {"mean_values": "[1],data[2]"}, "given twice"),
    (("data", [1, 3, 4, 6], F32), {"mean_values": "[1,x]"}, "is not a list of numbers"),
    (("data", [1, 3, 4, 6], F32), {"layout": "nch"}, "3 dimensions"),
    (("data", [1, 3, 4, 6], F32), {"layout": "ncdw"}, "need the dimensions C, H and W"),
    (("data", [1, 3, 4, 6], F32), {"layout": "nhwc->nchw"}, "layout conversion"),
    (("data", [1, 4, 6, 3], np.uint8), {"mean_values": "[1]"}, "mean/scale values give float data but the input is uint8"),
    (("data", [1, 3, 4, 6], F32), {"central_fraction": 1.5}, r"central_fraction 1.5: must be in \(0, 1\]"),
])
def test_image_option_errors(images, model_input, options, match):
    with error(match):
        load_calibration_data(images, [model_input], **options)


@pytest.mark.parametrize("shape,match", [
    ("1,3,5,6", r"\[1,3,5,6\] does not fit input 'data' of shape \[1,3,4,6\]"),
    ("1,3,4", "does not fit"),
    ("1,3,4.5,6", "must be positive integers"),
    ("1,3,0,6", "must be positive integers"),
    ("other[1,3,4,6]", "no model input named 'other'"),
])
def test_input_shape_errors(images, shape, match):
    with error(match):
        load_calibration_data(images, IMAGE_1X3, input_shape=shape)


def test_input_shape_must_name_inputs_of_multi_input_model(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((1, 2), F32))
    with error("the model has 2 inputs, name each one"):
        load_calibration_data(tmp_path / "a.npy", [("a", [1, 2], F32), ("b", [1, 2], F32)], input_shape="1,2")


def test_images_need_a_single_input_model(images):
    with error(r"calib: images feed a model with one input; this model has 2 \('a', 'b'\)"):
        load_calibration_data(images, [("a", [1, 3, 4, 6], F32), ("b", [1, 3, 4, 6], F32)])


def test_unreadable_image_fails_when_read_naming_the_file(images):
    bad = images / "a_bad.png"
    bad.write_bytes(b"not a png")
    src = load_calibration_data(images, IMAGE_1X3)
    assert src[1]["data"].shape == (1, 3, 4, 6)  # the others still load
    with error(f"{bad}: cannot read the image"):
        src[0]


def test_missing_pillow_is_a_clear_error(images, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with error("reading images needs Pillow"):
        load_calibration_data(images, IMAGE_1X3)


# ----------------------------------------------------------------------------- finding files

def test_path_errors(tmp_path, pil):
    (tmp_path / "empty").mkdir()
    with error("empty: no images or .npy/.npz files in the folder"):
        load_calibration_data(tmp_path / "empty", IMAGE_1X3)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with error(r"no images .* \(skipped 1 other file\(s\): .*notes.txt\)"):
        load_calibration_data(tmp_path / "other", IMAGE_1X3)
    with error("nowhere: no such file or folder"):
        load_calibration_data(tmp_path / "nowhere", IMAGE_1X3)
    with error(r"\*.jpg: no files match the pattern"):
        load_calibration_data(str(tmp_path / "*.jpg"), IMAGE_1X3)
    (tmp_path / "data.csv").write_text("1,2\n")
    with error(r"data.csv: unknown extension '.csv'"):
        load_calibration_data(tmp_path / "data.csv", IMAGE_1X3)
    mixed = tmp_path / "mixed"
    save_png(pil, mixed / "a.png", (0, 0, 0))
    np.save(mixed / "b.npy", np.zeros((1, 3, 4, 6), F32))
    with error("mixed: mixes images .* and NumPy files"):
        load_calibration_data(mixed, IMAGE_1X3)
    listing = tmp_path / "list.txt"
    listing.write_text("# header\nmissing.png\n")
    with error(r"list.txt:2: no such file .*missing.png"):
        load_calibration_data(listing, IMAGE_1X3)


# ----------------------------------------------------------------------------- NumPy data

def test_npy_stack_of_samples(tmp_path):
    np.save(tmp_path / "s.npy", np.arange(5 * 2 * 3, dtype=np.float64).reshape(5, 2, 3))
    src = load_calibration_data(tmp_path / "s.npy", [("x", [2, 3], F32)])
    assert len(src) == 5 and src.label(4) == f"{tmp_path / 's.npy'}[4]"
    x = src[4]["x"]
    assert x.dtype == F32 and x.shape == (2, 3) and x[0, 0] == 24


def test_npy_of_model_rank_splits_into_batches(tmp_path):
    np.save(tmp_path / "s.npy", np.arange(6 * 4, dtype=F32).reshape(6, 4))
    src = load_calibration_data(tmp_path / "s.npy", [("x", [-1, 4], F32)])
    assert len(src) == 6 and src[2]["x"].shape == (1, 4)
    # A static batch of 2 splits the rows in pairs.
    src = load_calibration_data(tmp_path / "s.npy", [("x", [2, 4], F32)])
    assert len(src) == 3
    np.testing.assert_array_equal(src[1]["x"], np.arange(8, 16, dtype=F32).reshape(2, 4))
    with error(r"the 6 rows of \[6,4\] do not split into samples of 4"):
        load_calibration_data(tmp_path / "s.npy", [("x", [4, 4], F32)])
    with error(r"expected an array of rank 4 .* or 3 .*, got \[6,4\]"):
        load_calibration_data(tmp_path / "s.npy", [("x", [1, 1, 4], F32)])


def test_npz_keyed_by_input_name(tmp_path):
    np.savez(tmp_path / "s.npz", ids=np.ones((3, 1, 8), np.int64), mask=np.ones((3, 8), np.int64))
    inputs = [("ids", [1, 8], np.int32), ("mask", [-1, 8], np.int64)]
    src = load_calibration_data(tmp_path / "s.npz", inputs)
    assert len(src) == 3
    sample = src[0]
    assert list(sample) == ["ids", "mask"]
    assert sample["ids"].dtype == np.int32 and sample["mask"].shape == (1, 8)


def test_npz_single_key_feeds_single_input(tmp_path):
    np.savez(tmp_path / "s.npz", np.zeros((2, 1, 3), F32))
    assert len(load_calibration_data(tmp_path / "s.npz", [("whatever", [1, 3], F32)])) == 2


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "s.npz", ids=np.ones((3, 1, 8)), extra=np.ones((3, 1, 8)))
    with error(r"s.npz: no key for input\(s\) 'mask'; unexpected key\(s\) 'extra'"):
        load_calibration_data(tmp_path / "s.npz", [("ids", [1, 8], F32), ("mask", [1, 8], F32)])
    np.savez(tmp_path / "t.npz", a=np.ones((3, 1, 8)), b=np.ones((2, 1, 8)))
    with error(r"t.npz: the inputs hold different numbers of samples \('a': 3, 'b': 2\)"):
        load_calibration_data(tmp_path / "t.npz", [("a", [1, 8], F32), ("b", [1, 8], F32)])
    np.savez(tmp_path / "e.npz", a=np.ones((0, 1, 8)))
    with error("e.npz: holds no samples"):
        load_calibration_data(tmp_path / "e.npz", [("a", [1, 8], F32)])


def test_npy_needs_single_input_model(tmp_path):
    np.save(tmp_path / "s.npy", np.zeros((2, 1, 3), F32))
    with error(r"s.npy: a .npy file feeds a model with one input; this model has 2"):
        load_calibration_data(tmp_path / "s.npy", [("a", [1, 3], F32), ("b", [1, 3], F32)])
    with error(r"a .npy file feeds a model with one input"):
        load_calibration_data(tmp_path, [("a", [1, 3], F32), ("b", [1, 3], F32)])


def test_folder_of_sample_files(tmp_path):
    d = tmp_path / "samples"
    d.mkdir()
    for i in range(3):
        np.savez(d / f"s_{i}.npz", a=np.full((1, 2), i, F32), b=np.full((1, 2), 10 * i, np.int64))
    src = load_calibration_data(d, [("a", [1, 2], F32), ("b", [1, 2], np.int32)])
    assert len(src) == 3 and src[2]["b"].tolist() == [[20, 20]] and src[2]["b"].dtype == np.int32
    npys = tmp_path / "npys"
    npys.mkdir()
    np.save(npys / "s_000.npy", np.zeros((1, 3, 4, 4), F32))
    np.save(npys / "s_001.npy", np.zeros((1, 3, 2, 2), F32))
    src = load_calibration_data(npys, [("data", [1, 3, 4, 4], F32)])
    assert src[0]["data"].shape == (1, 3, 4, 4)
    with error(rf"^{npys / 's_001.npy'}: input 'data' expects shape \[1,3,4,4\], got \[1,3,2,2\]$"):
        src[1]


@pytest.mark.parametrize("data,dtype,match", [
    (np.ones((1, 2), np.float64), np.int32, "input 'x' expects int32 data, got float64"),
    (np.ones((1, 2), np.int64), F32, "input 'x' expects float32 data, got int64"),
    (np.ones((1, 2), np.bool_), np.int64, "expects int64 data, got bool"),
    (np.array([[1, 300]], np.int64), np.uint8, r"input 'x' is uint8 but the data holds values in \[1, 300\]"),
])
def test_dtype_errors(tmp_path, data, dtype, match):
    np.save(tmp_path / "s.npy", data)
    with error(match):
        load_calibration_data(tmp_path / "s.npy", [("x", [1, 2], dtype)])[0]


def test_float16_input_and_in_range_int_narrowing(tmp_path):
    np.save(tmp_path / "f.npy", np.ones((1, 2), np.float64))
    assert load_calibration_data(tmp_path / "f.npy", [("x", [1, 2], np.float16)])[0]["x"].dtype == np.float16
    np.save(tmp_path / "i.npy", np.array([[1, 255]], np.int64))
    assert load_calibration_data(tmp_path / "i.npy", [("x", [1, 2], np.uint8)])[0]["x"].tolist() == [[1, 255]]


def test_sample_file_key_errors(tmp_path):
    d = tmp_path / "samples"
    d.mkdir()
    np.savez(d / "s_0.npz", a=np.zeros((1, 2), F32), c=np.zeros((1, 2), F32))
    src = load_calibration_data(d, [("a", [1, 2], F32), ("b", [1, 2], F32)])
    with error(r"s_0.npz: no key for input\(s\) 'b'; unexpected key\(s\) 'c'"):
        src[0]


def test_unreadable_numpy_files(tmp_path):
    (tmp_path / "bad.npy").write_bytes(b"garbage")
    with error("bad.npy: cannot read the .npy file"):
        load_calibration_data(tmp_path / "bad.npy", [("x", [1, 2], F32)])
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with error("bad.npz: cannot read the .npz file"):
        load_calibration_data(tmp_path / "bad.npz", [("x", [1, 2], F32)])
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with error("obj.npy: cannot read"):
        load_calibration_data(tmp_path / "obj.npy", [("x", [1], F32)])
    np.save(tmp_path / "real.npy", np.zeros((1, 2), F32))
    (tmp_path / "real.npy").rename(tmp_path / "fake.npz")
    with error("fake.npz: holds a .npy array, not a .npz archive"):
        load_calibration_data(tmp_path / "fake.npz", [("x", [1, 2], F32)])
    np.savez(tmp_path / "zip.npz", x=np.zeros((1, 2), F32))
    (tmp_path / "zip.npz").rename(tmp_path / "zip.npy")
    with error("zip.npy: holds a .npz archive, not a .npy array"):
        load_calibration_data(tmp_path / "zip.npy", [("x", [1, 2], F32)])


def test_image_options_refused_for_numpy_data(tmp_path):
    np.save(tmp_path / "s.npy", np.zeros((2, 1, 3), F32))
    with error("--data-mean-values, --reverse-input-channels apply to images only"):
        load_calibration_data(tmp_path / "s.npy", [("x", [1, 3], F32)], mean_values="[1]",
                              reverse_input_channels=True)
    # A layout describes the model, so it is accepted (and unused) with NumPy data.
    assert len(load_calibration_data(tmp_path / "s.npy", [("x", [1, 3], F32)], layout="nc")) == 2


# ----------------------------------------------------------------------------- the sequence

def test_slices_subsets_and_bounds(tmp_path):
    np.save(tmp_path / "s.npy", np.arange(10, dtype=F32).reshape(10, 1, 1))
    src = load_calibration_data(tmp_path / "s.npy", [("x", [1, 1], F32)], seed=3)

    def values(s):
        return [int(x["x"][0, 0]) for x in s]

    assert values(src[2:5]) == [2, 3, 4] and isinstance(src[2:5], CalibrationSource)
    assert values(src.subset(3)) == [0, 1, 2]
    assert len(src.subset(50)) == 10
    picked = values(src.subset(4, shuffle=True))
    assert picked == sorted(picked) and len(set(picked)) == 4
    assert picked == values(load_calibration_data(tmp_path / "s.npy", [("x", [1, 1], F32)], seed=3)
                            .subset(4, shuffle=True))
    with pytest.raises(IndexError, match="calibration sample 10 out of range"):
        src[10]
    with pytest.raises(ValueError):
        src.subset(-1)
    assert "10 samples" in repr(src)


def test_model_input_errors(tmp_path):
    np.save(tmp_path / "s.npy", np.zeros((1, 2), F32))
    with error("expected \\(name, shape, dtype\\)"):
        load_calibration_data(tmp_path / "s.npy", [("x", [1, 2])])
    with error("an input name appears twice"):
        load_calibration_data(tmp_path / "s.npy", [("x", [1, 2], F32), ("x", [1, 2], F32)])
    with error("the model has no inputs"):
        load_calibration_data(tmp_path / "s.npy", [])
    assert issubclass(CalibrationDataError, OvqError)
