"""TF-Slim's evaluation preprocessing for a photo, and a top-k formatter for the predictions.

Mirrors tensorflow/models research/slim/preprocessing (eval branches only):

* **inception** (`inception_preprocessing.preprocess_for_eval`): uint8 -> float32 in [0, 1]
  (`convert_image_dtype`: times 1/255), `tf.image.central_crop(0.875)`, TF1
  `resize_bilinear(align_corners=False)` to the net's size, then `(x - 0.5) * 2` -> [-1, 1].
* **vgg** (`vgg_preprocessing.preprocess_for_eval`, also resnet_v1/v2): aspect-preserving TF1
  bilinear resize so the smaller side is 256 (`rint` of the float32 size), central crop to the
  net's size (offset `(size - crop) // 2`), subtract the ImageNet RGB means 123.68, 116.78,
  103.94. No scaling.
* **cifarnet**: `resize_image_with_crop_or_pad`, then `per_image_standardization`.
* **lenet**: `resize_image_with_crop_or_pad`, then `(x - 128) / 128`.

`PREPROCESSING_BY_NET` is `preprocessing_factory.get_preprocessing`'s map. Note that this factory
maps resnet_v2_* to vgg preprocessing, while the slim README says its released resnet_v2
checkpoints were trained with inception preprocessing at 299x299: pass
`preprocessing_name="inception", image_size=299` for those checkpoints.

TF1 `resize_bilinear(align_corners=False)` (half_pixel_centers=False) samples output pixel `i` at
input coordinate `i * in_size / out_size` with no half-pixel offset; it is reimplemented here in
float32 with TF's operation order (Pillow's and torch's bilinear resize differ from it). Images
are decoded with Pillow and converted to RGB; like `tf.image.decode_jpeg`, EXIF orientation is
ignored. JPEG decoders differ in their IDCT, so pixels may differ from TF's by a unit or two.
All functions return float32 NHWC `[1, H, W, 3]` (`[1, H, W, C]` for arrays with C channels).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = [
    "IMAGENET_RGB_MEANS", "RESIZE_SIDE", "INCEPTION_CENTRAL_FRACTION", "PREPROCESSING_BY_NET", "preprocessing_name",
    "load_image", "resize_bilinear", "central_crop", "resize_with_crop_or_pad",
    "inception_preprocessing", "vgg_preprocessing", "cifarnet_preprocessing", "lenet_preprocessing",
    "preprocess_image", "preprocessing_name_for", "preprocess_for",
    "Prediction", "load_labels", "top_k", "format_top_k",
]

IMAGENET_RGB_MEANS = (123.68, 116.78, 103.94)
RESIZE_SIDE = 256                   # vgg_preprocessing._RESIZE_SIDE_MIN, the eval resize side
INCEPTION_CENTRAL_FRACTION = 0.875

PREPROCESSING_BY_NET = {
    "cifarnet": "cifarnet",
    "inception": "inception", "inception_v1": "inception", "inception_v2": "inception",
    "inception_v3": "inception", "inception_v4": "inception", "inception_resnet_v2": "inception",
    "lenet": "lenet",
    "mobilenet_v1": "inception", "mobilenet_v2": "inception", "mobilenet_v2_035": "inception",
    "mobilenet_v2_140": "inception",
    "nasnet_mobile": "inception", "nasnet_large": "inception",
    "pnasnet_mobile": "inception", "pnasnet_large": "inception",
    "resnet_v1_50": "vgg", "resnet_v1_101": "vgg", "resnet_v1_152": "vgg", "resnet_v1_200": "vgg",
    "resnet_v2_50": "vgg", "resnet_v2_101": "vgg", "resnet_v2_152": "vgg", "resnet_v2_200": "vgg",
    "vgg": "vgg", "vgg_a": "vgg", "vgg_16": "vgg", "vgg_19": "vgg",
}


def preprocessing_name(net: str, preprocessing: str | None = None) -> str:
    """`preprocessing` when given, else preprocessing_factory's entry for the net (or for the net
    it is a width variant of: mobilenet_v1_075 is mobilenet_v1 with a depth multiplier)."""
    if preprocessing:
        return preprocessing
    family = net.rsplit("_", 1)[0] if net.startswith("mobilenet_v1_") else net
    if family not in PREPROCESSING_BY_NET:
        raise ValueError(f"TF-Slim's preprocessing_factory has no preprocessing for {net}; "
                         f"choose one with --preprocessing (inception, vgg, cifarnet, lenet)")
    return PREPROCESSING_BY_NET[family]


# ---------------------------------------------------------------------------------------------
# Image primitives (HWC arrays)
# ---------------------------------------------------------------------------------------------

def load_image(image) -> np.ndarray:
    """A path, a PIL image or an HWC / HW array -> an HWC array (uint8 RGB for files)."""
    if isinstance(image, (str, PathLike)):
        from PIL import Image  # lazy: only to decode an image file
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"image {path} does not exist")
        try:
            with Image.open(path) as img:
                return np.asarray(img.convert("RGB"))
        except OSError as err:  # PIL.UnidentifiedImageError is an OSError
            raise ValueError(f"cannot decode image {path}: {err}") from None
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or min(array.shape) == 0:
        raise ValueError(f"image must be [height, width, channels] with no empty dimension, "
                         f"got shape {list(array.shape)}")
    return array


def _legacy_interpolation(in_size: int, out_size: int):
    """TF1 legacy scaler: source coordinate `i * (in / out)` in float32, lower/upper/lerp."""
    scale = np.float32(in_size) / np.float32(out_size)
    source = np.arange(out_size, dtype=np.float32) * scale
    floor = np.floor(source)
    lower = np.maximum(floor.astype(np.int64), 0)
    upper = np.minimum(np.ceil(source).astype(np.int64), in_size - 1)
    return lower, upper, (source - floor).astype(np.float32)


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """TF1 `tf.image.resize_bilinear(align_corners=False)` of an HWC image -> float32."""
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"resize_bilinear: image must be [height, width, channels], "
                         f"got shape {list(image.shape)}")
    if height <= 0 or width <= 0:
        raise ValueError(f"resize_bilinear: output size must be positive, got {height}x{width}")
    src = image.astype(np.float32)
    y_lo, y_hi, y_lerp = _legacy_interpolation(src.shape[0], height)
    x_lo, x_hi, x_lerp = _legacy_interpolation(src.shape[1], width)
    x_lerp = x_lerp[None, :, None]
    top_left, top_right = src[y_lo][:, x_lo], src[y_lo][:, x_hi]
    bottom_left, bottom_right = src[y_hi][:, x_lo], src[y_hi][:, x_hi]
    # TF's compute_lerp order: top/bottom rows first, then between them.
    top = top_left + (top_right - top_left) * x_lerp
    bottom = bottom_left + (bottom_right - bottom_left) * x_lerp
    return (top + (bottom - top) * y_lerp[:, None, None]).astype(np.float32)


def central_crop(image: np.ndarray, central_fraction: float) -> np.ndarray:
    """`tf.image.central_crop`: start `int((size - size * fraction) / 2)`, keep `size - 2 * start`."""
    if not 0.0 < central_fraction <= 1.0:
        raise ValueError(f"central_crop: central_fraction must be in (0, 1], got {central_fraction}")
    if central_fraction == 1.0:
        return image
    h, w = image.shape[:2]
    top = int((h - h * central_fraction) / 2)
    left = int((w - w * central_fraction) / 2)
    return image[top:h - top, left:w - left]


def resize_with_crop_or_pad(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """`tf.image.resize_image_with_crop_or_pad`: centrally crop and/or zero-pad to height x width."""
    h, w = image.shape[:2]
    crop_top, crop_left = max((h - height) // 2, 0), max((w - width) // 2, 0)
    pad_top, pad_left = max((height - h) // 2, 0), max((width - w) // 2, 0)
    cropped = image[crop_top:crop_top + min(height, h), crop_left:crop_left + min(width, w)]
    out = np.zeros((height, width) + image.shape[2:], dtype=image.dtype)
    out[pad_top:pad_top + cropped.shape[0], pad_left:pad_left + cropped.shape[1]] = cropped
    return out


def _to_unit_float(image: np.ndarray) -> np.ndarray:
    """`tf.image.convert_image_dtype(image, tf.float32)`: integers are scaled by 1 / dtype max."""
    if image.dtype == np.float32:
        return image
    if np.issubdtype(image.dtype, np.integer):
        return image.astype(np.float32) * np.float32(1.0 / np.iinfo(image.dtype).max)
    return image.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# The four TF-Slim eval preprocessings (HWC in, HWC float32 out)
# ---------------------------------------------------------------------------------------------

def inception_preprocessing(image, height: int, width: int,
                            central_fraction: float = INCEPTION_CENTRAL_FRACTION) -> np.ndarray:
    image = _to_unit_float(load_image(image))
    if central_fraction:
        image = central_crop(image, central_fraction)
    image = resize_bilinear(image, height, width)
    return (image - np.float32(0.5)) * np.float32(2.0)


def _smallest_side_at_least(h: int, w: int, smallest_side: int) -> tuple[int, int]:
    h32, w32, side = np.float32(h), np.float32(w), np.float32(smallest_side)
    scale = side / w32 if h32 > w32 else side / h32
    return int(np.rint(h32 * scale)), int(np.rint(w32 * scale))


def vgg_preprocessing(image, height: int, width: int, resize_side: int = RESIZE_SIDE) -> np.ndarray:
    image = load_image(image)
    if image.shape[2] != len(IMAGENET_RGB_MEANS):
        raise ValueError(f"vgg preprocessing: needs an RGB image, got shape {list(image.shape)}")
    new_h, new_w = _smallest_side_at_least(image.shape[0], image.shape[1], resize_side)
    image = resize_bilinear(image, new_h, new_w)
    if new_h < height or new_w < width:
        raise ValueError(f"vgg preprocessing: crop {height}x{width} is larger than the image "
                         f"resized to smaller side {resize_side} ({new_h}x{new_w}); "
                         f"raise resize_side")
    top, left = (new_h - height) // 2, (new_w - width) // 2
    image = image[top:top + height, left:left + width]
    return image - np.asarray(IMAGENET_RGB_MEANS, dtype=np.float32)


def cifarnet_preprocessing(image, height: int, width: int) -> np.ndarray:
    # The slim code passes (output_width, output_height) as (target_height, target_width).
    image = resize_with_crop_or_pad(load_image(image).astype(np.float32), width, height)
    mean = image.mean(dtype=np.float32)
    stddev = max(np.float32(image.std(dtype=np.float32)), np.float32(1.0 / np.sqrt(image.size)))
    return ((image - mean) / stddev).astype(np.float32)


def lenet_preprocessing(image, height: int, width: int) -> np.ndarray:
    image = resize_with_crop_or_pad(load_image(image).astype(np.float32), width, height)
    return (image - np.float32(128.0)) / np.float32(128.0)


_PREPROCESSINGS = {
    "inception": inception_preprocessing, "vgg": vgg_preprocessing,
    "cifarnet": cifarnet_preprocessing, "lenet": lenet_preprocessing,
}


def preprocess_image(image, height: int, width: int, preprocessing_name: str) -> np.ndarray:
    """Run one named preprocessing ('inception', 'vgg', 'cifarnet', 'lenet') -> [1, H, W, C]."""
    if preprocessing_name not in _PREPROCESSINGS:
        raise ValueError(f"unknown preprocessing {preprocessing_name!r}; "
                         f"choose one of {sorted(_PREPROCESSINGS)}")
    out = _PREPROCESSINGS[preprocessing_name](image, int(height), int(width))
    return np.ascontiguousarray(out[None], dtype=np.float32)


def preprocessing_name_for(net_name: str) -> str:
    """The preprocessing `preprocessing_factory` uses for `net_name`."""
    if net_name not in PREPROCESSING_BY_NET:
        raise ValueError(f"preprocessing for net {net_name!r} was not recognized (TF-Slim's "
                         f"preprocessing_factory has no entry for it); pass preprocessing_name= "
                         f"one of {sorted(_PREPROCESSINGS)}")
    return PREPROCESSING_BY_NET[net_name]


def _default_image_size(net_name: str) -> int:
    try:
        from slimtriton.nets import nets_factory  # lazy: the factory imports every net
        return int(nets_factory.networks_map[net_name].default_image_size)
    except Exception as err:  # the nets factory lacks the net or the attribute
        raise ValueError(f"no default image size known for net {net_name!r} ({err}); "
                         "pass image_size") from None


def preprocess_for(net_name: str, path, image_size: int | None = None,
                   preprocessing_name: str | None = None) -> np.ndarray:
    """Eval preprocessing of the photo at `path` for `net_name` -> float32 [1, size, size, 3].

    `preprocessing_name` overrides the factory's choice (like eval_image_classifier's
    --preprocessing_name); `image_size` defaults to the net's `default_image_size`.
    """
    name = preprocessing_name or preprocessing_name_for(net_name)
    size = image_size if image_size is not None else _default_image_size(net_name)
    return preprocess_image(path, size, size, name)


# ---------------------------------------------------------------------------------------------
# Top-k predictions
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prediction:
    rank: int                 # 1-based
    index: int                # index in the network's output
    class_id: int | None      # dataset class (index - 1 with a background class); None = background
    score: float
    label: str


def load_labels(path) -> list[str]:
    """A labels text file: one label per line, or TF-Slim's `labels.txt` lines `N:label`."""
    lines = [line.rstrip("\r\n") for line in Path(path).read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if line.strip()]
    indexed = [re.fullmatch(r"(\d+):(.*)", line) for line in lines]
    if lines and all(indexed):
        by_index = {int(m.group(1)): m.group(2) for m in indexed}
        if sorted(by_index) != list(range(len(by_index))):
            raise ValueError(f"labels file {path}: `N:label` lines must number 0..{len(by_index) - 1} "
                             "without gaps or repeats")
        return [by_index[i] for i in range(len(by_index))]
    return lines


def top_k(probs, k: int = 5, labels: Sequence[str] | str | PathLike | None = None,
          background_class: bool | str = "auto") -> list[Prediction]:
    """The k best classes of one image's scores (shape [C] or [1, ..., C]).

    `background_class`: True when output 0 is TF-Slim's background class (1001-class ImageNet
    nets), so output i is dataset class i - 1; "auto" means True exactly when C == 1001.
    `labels`: a labels file path or a sequence: either one label per dataset class (C - 1 with a
    background class) or one per output (C, i.e. including the background). Without labels the
    label shows the class index.
    """
    scores = np.asarray(probs)
    if scores.ndim == 0 or int(np.prod(scores.shape[:-1])) != 1:
        raise ValueError(f"top_k: expects the scores of one image, shape [C] or [1, ..., C]; "
                         f"got shape {list(scores.shape)}")
    scores = scores.reshape(-1).astype(np.float64)
    num = scores.size
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"top_k: {int(np.sum(~np.isfinite(scores)))} of {num} scores are not "
                         "finite (NaN/inf)")
    if background_class == "auto":
        background = num == 1001
    elif isinstance(background_class, bool):
        background = background_class
    else:
        raise ValueError(f"top_k: background_class must be True, False or 'auto', "
                         f"got {background_class!r}")
    offset = 1 if background else 0
    if not 1 <= k <= num:
        raise ValueError(f"top_k: k must be in [1, {num}] for {num} classes, got {k}")
    if isinstance(labels, (str, PathLike)):
        labels = load_labels(labels)
    if labels is not None:
        labels = list(labels)
        if len(labels) == num - offset and offset:
            labels = ["background"] + labels
        elif len(labels) != num:
            expect = f"{num - offset} (one per class) or {num} (one per output)" if offset else f"{num}"
            raise ValueError(f"top_k: {len(labels)} labels for {num} outputs; expected {expect}")
    order = sorted(range(num), key=lambda i: (-scores[i], i))[:k]  # stable: ties by index
    out = []
    for rank, index in enumerate(order, 1):
        class_id = None if (background and index == 0) else index - offset
        if labels is not None:
            label = labels[index]
        else:
            label = "background" if class_id is None else f"class {class_id}"
        out.append(Prediction(rank, index, class_id, float(scores[index]), label))
    return out


def format_top_k(predictions: Sequence[Prediction]) -> str:
    """One line per prediction: rank, score, dataset class id, label."""
    lines = []
    for p in predictions:
        cls = "bg" if p.class_id is None else str(p.class_id)
        lines.append(f"{p.rank:>2}. {p.score:8.5f}  [{cls:>4}]  {p.label}")
    return "\n".join(lines)
