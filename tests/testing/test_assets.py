"""Smoke tests of the offline test assets (ovq_testing.assets).

Each asset is built (or found in the cache), read by OpenVINO and run once at the f32
hint. Assets whose pip package is missing are skipped with the install hint. Everything
except ``digits`` and ``resnet_like`` is marked ``zoo`` (run with ``pytest -m zoo``).
"""

from __future__ import annotations

import numpy as np
import pytest

from ovq_testing import assets
from ovq_testing.assets import ASSETS, AssetUnavailable, asset_path, example_inputs

LIGHT = ("digits", "resnet_like")

openvino = pytest.importorskip("openvino")


def _path_or_skip(name: str):
    try:
        return asset_path(name)
    except AssetUnavailable as exc:
        pytest.skip(str(exc))


def _params():
    return [
        pytest.param(name, id=name) if name in LIGHT
        else pytest.param(name, id=name, marks=pytest.mark.zoo)
        for name in ASSETS
    ]


@pytest.mark.parametrize("name", _params())
def test_asset_reads_and_runs_finite(name: str) -> None:
    path = _path_or_skip(name)
    spec = ASSETS[name]
    suffix = {"ir": ".xml", "onnx": ".onnx", "tflite": ".tflite"}[spec.kind]
    assert path.suffix == suffix and path.is_file()
    if spec.kind == "ir":
        assert path.with_suffix(".bin").is_file()
    core = openvino.Core()
    model = core.read_model(str(path))
    compiled = core.compile_model(model, "CPU", assets.F32_CONFIG)
    try:
        inputs = example_inputs(name, n=4)
    except AssetUnavailable as exc:
        pytest.skip(str(exc))
    results = compiled(inputs)
    assert len(results) == len(model.outputs)
    for port, value in results.items():
        value = np.asarray(value)
        assert value.size > 0, port
        assert np.isfinite(value).all(), f"{name}: non-finite output {port.get_any_name()}"


def test_asset_table() -> None:
    assert {"digits", "resnet_like", "efficientnet_lite0", "minilm", "silero_vad", "fer",
            "ddddocr/common", "ddddocr/common_old", "ddddocr/common_det"} <= set(ASSETS)
    assert sum(n.startswith("onnx_light/") for n in ASSETS) == 9
    for name, spec in ASSETS.items():
        assert spec.name == name
        assert spec.kind in {"ir", "onnx", "tflite"}
        assert spec.description


def test_unknown_asset_raises_key_error() -> None:
    with pytest.raises(KeyError, match="unknown asset 'nope'"):
        asset_path("nope")


def test_missing_package_raises_asset_unavailable() -> None:
    pkg = assets._Pkg("no-such-ovq-pkg", "no_such_ovq_pkg_xyz", "1.0", no_deps=True)
    with pytest.raises(AssetUnavailable, match=r"pip install --no-deps no-such-ovq-pkg==1\.0"):
        assets._require("fake", (pkg,))
    assert issubclass(AssetUnavailable, Exception)


def test_sha_mismatch_raises(tmp_path) -> None:
    f = tmp_path / "x.onnx"
    f.write_bytes(b"not a model")
    with pytest.raises(assets.AssetIntegrityError, match="does not match"):
        assets._verify(f, "0000000000000000", assets._ONNX)


def test_digits_accuracy() -> None:
    from ovq.data import DEMO_ACCURACY, demo_model_path, load_demo_data

    assert asset_path("digits") == demo_model_path()
    core = openvino.Core()
    compiled = core.compile_model(str(demo_model_path()), "CPU", assets.F32_CONFIG)
    x, y = load_demo_data("test")
    assert x.shape == (450, 1, 8, 8) and x.dtype == np.float32 and y.shape == (450,)
    assert 0.0 <= x.min() and x.max() <= 1.0
    acc = float((compiled(x)[0].argmax(1) == y).mean())
    assert acc == pytest.approx(DEMO_ACCURACY, abs=1e-9)
    xc, yc = load_demo_data("calib")
    assert xc.shape == (300, 1, 8, 8) and yc.shape == (300,)
    with pytest.raises(ValueError, match="split"):
        load_demo_data("train")  # type: ignore[arg-type]


def test_build_is_cached_atomic_and_idempotent(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path))
    first = asset_path("resnet_like")
    assert first.is_relative_to(tmp_path)
    assert first.parent.name.startswith("resnet_like-r1-")
    mtime = first.stat().st_mtime_ns
    again = asset_path("resnet_like")
    assert again == first and again.stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == [first.parent.name]  # no temp leftovers


def test_failed_build_leaves_no_trace(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path))
    spec = assets.AssetSpec("broken", "ir", "a build that fails")

    def build(folder):
        (folder / "half.bin").write_bytes(b"x")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        assets._cached_build(spec, "model.xml", build)
    assert list(tmp_path.iterdir()) == []


def test_resnet_like_structure() -> None:
    core = openvino.Core()
    model = core.read_model(str(asset_path("resnet_like")))
    types = [op.get_type_name() for op in model.get_ordered_ops()]
    assert types.count("Convolution") == 20
    assert types.count("Add") == 29
    assert types.count("Relu") == 17
    assert types.count("MatMul") == 1
    assert [o.get_any_name() for o in model.outputs] == ["probs", "logits"]


@pytest.mark.zoo
def test_efficientnet_crops_deterministic() -> None:
    try:
        crops = assets.efficientnet_crops(600)
    except AssetUnavailable as exc:
        pytest.skip(str(exc))
    assert crops.shape == (600, 3, 224, 224) and crops.dtype == np.float32
    assert -1.0 <= float(crops[:20].min()) and float(crops[:20].max()) <= 1.0
    np.testing.assert_array_equal(assets.make_efficientnet_crops(3), crops[:3])


@pytest.mark.zoo
def test_efficientnet_sanity_coffee() -> None:
    path = _path_or_skip("efficientnet_lite0")
    pytest.importorskip("skimage")
    import skimage.data
    from PIL import Image

    img = Image.fromarray(skimage.data.coffee())
    w, h = img.size
    s = min(w, h)
    box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
    a = np.asarray(img.resize((224, 224), Image.Resampling.BILINEAR, box=box), np.float32)
    x = ((a - 127.5) / 127.5).transpose(2, 0, 1)[None]
    core = openvino.Core()
    logits = core.compile_model(str(path), "CPU", assets.F32_CONFIG)(x)[0][0]
    assert int(logits.argmax()) == 967  # espresso


@pytest.mark.zoo
def test_minilm_sentences_and_embeddings() -> None:
    path = _path_or_skip("minilm")
    sentences = assets.minilm_sentences()
    assert len(sentences) == 71
    inputs = assets.minilm_inputs()
    assert set(inputs) == {"input_ids", "attention_mask", "token_type_ids"}
    assert all(v.shape == (71, 64) and v.dtype == np.int64 for v in inputs.values())
    core = openvino.Core()
    compiled = core.compile_model(str(path), "CPU", assets.F32_CONFIG)
    hidden = compiled(inputs)["last_hidden_state"]
    emb = assets.mean_pool_normalize(hidden, inputs["attention_mask"])
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    cos = emb @ emb.T
    ids = inputs["input_ids"]
    same = (ids[:, None, :] == ids[None, :, :]).all(-1)  # the corpus repeats one sentence (38 and 44)
    np.testing.assert_allclose(cos[same], 1.0, rtol=1e-5)
    assert cos[~same].max() < 0.9999
