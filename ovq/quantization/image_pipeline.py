"""Image decoding and preprocessing as POT and its Accuracy Checker did them.

An :class:`ImagePipeline` is a reader (``opencv``: BGR pixels from ``cv2.imread``;
``pillow``: RGB pixels from Pillow) and an ordered list of typed steps
(:class:`Resize`, :class:`Crop`, :class:`SwapChannels`, :class:`Normalize`); it turns
one image file into an ``H x W x C`` array (uint8, or float32 after ``Normalize``).

OpenCV is used through ``opencv-python-headless`` (the ``pot`` extra) because POT's
simplified engine and the Accuracy Checker's default reader decode and resize with it:
its bilinear resize samples 2 pixels per axis without antialiasing, Pillow's filters
over the whole footprint when downscaling, so the pixels (and the calibrated input
ranges) differ. Without OpenCV the pipeline falls back to Pillow with a warning naming the difference.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from ovq.errors import CalibrationDataError

log = logging.getLogger("ovq.quantization")

INTERPOLATIONS = ("NEAREST", "LINEAR", "BILINEAR", "CUBIC", "BICUBIC", "AREA")
ASPECT_RATIO_SCALES = (None, "greater", "width", "height", "fit_to_window")


def opencv() -> ModuleType | None:
    """``cv2`` if installed, else None."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2


_warned: set[str] = set()


def _fallback_warning(what: str) -> None:
    if what not in _warned:
        _warned.add(what)
        log.warning("%s: OpenCV is not installed (pip install 'ovq[pot]' or opencv-python-headless); using Pillow, "
                    "whose bilinear resize filters differently (pixel values differ from POT's)", what)


@dataclass(frozen=True)
class Resize:
    """Resize to ``width`` x ``height`` (None: the model input's); with
    ``aspect_ratio_scale`` (Accuracy Checker's rule) one side becomes the given size and
    the other keeps the aspect ratio. ``backend``: ``opencv`` or ``pillow``."""

    width: int | None = None
    height: int | None = None
    aspect_ratio_scale: str | None = None
    interpolation: str = "LINEAR"
    backend: str = "opencv"

    def target(self, image_w: int, image_h: int, size: tuple[int, int]) -> tuple[int, int]:
        """The output (width, height) for an image of that size; ``size`` is the model
        input's (width, height)."""
        w, h = self.width or size[0], self.height or size[1]
        rule = self.aspect_ratio_scale
        if rule == "greater":
            return (w, int(h * image_h / image_w)) if image_h > image_w else (int(w * image_w / image_h), h)
        if rule == "width":
            return int(w * image_w / image_h), h
        if rule == "height":
            return w, int(h * image_h / image_w)
        if rule == "fit_to_window":
            s = min(h / image_h, w / image_w)
            return int(s * image_w), int(s * image_h)
        return w, h


@dataclass(frozen=True)
class Crop:
    """Central crop to ``width`` x ``height``, or to ``central_fraction`` of each side."""

    width: int | None = None
    height: int | None = None
    central_fraction: float | None = None


@dataclass(frozen=True)
class SwapChannels:
    """Reverse the channel order (``bgr_to_rgb`` / ``rgb_to_bgr``)."""


@dataclass(frozen=True)
class Normalize:
    """``(x - mean) / std`` per channel, in the current channel order."""

    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None


Step = Resize | Crop | SwapChannels | Normalize


@dataclass(frozen=True)
class ImagePipeline:
    """A reader and the steps applied in order (see the module docstring)."""

    reader: str = "opencv"
    steps: tuple[Step, ...] = ()

    def load(self, path: Path, *, size: tuple[int, int], channels: int = 3) -> np.ndarray:
        """The ``H x W x C`` array for ``path``; ``size`` is the model input's (width,
        height), ``channels`` 1 (grayscale) or 3.

        Raises:
            CalibrationDataError: the image cannot be read, or is smaller than a crop.
        """
        cv2 = opencv()
        img = self._read(path, cv2, channels == 1)
        for step in self.steps:
            if isinstance(step, Resize):
                img = _resize(img, step, cv2, path, size)
            elif isinstance(step, Crop):
                img = _crop(img, step, path)
            elif isinstance(step, SwapChannels):
                img = img[:, :, ::-1]
            else:
                img = img.astype(np.float32)
                if step.mean is not None:
                    img = img - np.asarray(step.mean, np.float32)
                if step.std is not None:
                    img = img / np.asarray(step.std, np.float32)
        return np.ascontiguousarray(img)

    def _read(self, path: Path, cv2: ModuleType | None, grayscale: bool) -> np.ndarray:
        if self.reader == "opencv" and cv2 is not None:
            flag = cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR
            img = cv2.imread(str(path), flag)
            if img is None:
                raise CalibrationDataError(f"{path}: cannot read the image (OpenCV)")
            return img[:, :, None] if img.ndim == 2 else img
        if self.reader == "opencv":
            _fallback_warning("reading images")
        from PIL import Image

        try:
            with Image.open(path) as im:
                pixels = np.asarray(im.convert("L" if grayscale else "RGB"))
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise CalibrationDataError(f"{path}: cannot read the image: {exc}") from None
        if pixels.ndim == 2:
            return pixels[:, :, None]
        return pixels[:, :, ::-1] if self.reader == "opencv" else pixels  # OpenCV's BGR order


def _resize(img: np.ndarray, step: Resize, cv2: ModuleType | None, path: Path, size: tuple[int, int]) -> np.ndarray:
    h, w = img.shape[:2]
    tw, th = step.target(w, h, size)
    if tw < 1 or th < 1:
        raise CalibrationDataError(f"{path}: resizing {w}x{h} gives an empty image")
    name = {"BILINEAR": "LINEAR", "BICUBIC": "CUBIC"}.get(step.interpolation, step.interpolation)
    if step.backend == "opencv" and cv2 is not None:
        flag = {"NEAREST": cv2.INTER_NEAREST, "LINEAR": cv2.INTER_LINEAR, "CUBIC": cv2.INTER_CUBIC,
                "AREA": cv2.INTER_AREA}[name]
        out = cv2.resize(img, (tw, th), interpolation=flag)
        return out[:, :, None] if out.ndim == 2 else out
    if step.backend == "opencv":
        _fallback_warning("resizing images")
    from PIL import Image

    flags = {"NEAREST": Image.Resampling.NEAREST, "LINEAR": Image.Resampling.BILINEAR,
             "CUBIC": Image.Resampling.BICUBIC, "AREA": Image.Resampling.BOX}
    mode = "L" if img.shape[2] == 1 else "RGB"
    out = np.asarray(Image.fromarray(img[:, :, 0] if mode == "L" else img, mode).resize((tw, th), flags[name]))
    return out[:, :, None] if out.ndim == 2 else out


def _crop(img: np.ndarray, step: Crop, path: Path) -> np.ndarray:
    h, w = img.shape[:2]
    if step.central_fraction is not None:
        ch, cw = int(h * step.central_fraction), int(w * step.central_fraction)
    else:
        ch, cw = step.height or h, step.width or w
    if ch > h or cw > w or ch < 1 or cw < 1:
        raise CalibrationDataError(f"{path}: a {cw}x{ch} crop does not fit the {w}x{h} image")
    top, left = (h - ch) // 2, (w - cw) // 2
    return img[top:top + ch, left:left + cw]
