"""TF-Slim eval preprocessing (on synthetic images written by Pillow) and the top-k formatter."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from slimtriton import preprocessing as pp


def write_png(path, array):
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return path


def naive_legacy_resize(image, out_h, out_w):
    """Pixel by pixel, straight from TF1's resize_bilinear(align_corners=False) definition."""
    in_h, in_w = image.shape[:2]
    out = np.zeros((out_h, out_w, image.shape[2]), np.float32)
    sy, sx = np.float32(in_h) / np.float32(out_h), np.float32(in_w) / np.float32(out_w)
    for y in range(out_h):
        fy = np.float32(y) * sy
        y0, y1 = int(np.floor(fy)), min(int(np.ceil(fy)), in_h - 1)
        ly = np.float32(fy - np.floor(fy))
        for x in range(out_w):
            fx = np.float32(x) * sx
            x0, x1 = int(np.floor(fx)), min(int(np.ceil(fx)), in_w - 1)
            lx = np.float32(fx - np.floor(fx))
            tl, tr = image[y0, x0].astype(np.float32), image[y0, x1].astype(np.float32)
            bl, br = image[y1, x0].astype(np.float32), image[y1, x1].astype(np.float32)
            top, bottom = tl + (tr - tl) * lx, bl + (br - bl) * lx
            out[y, x] = top + (bottom - top) * ly
    return out


# --------------------------------------------------------------------------------------------
# Primitives
# --------------------------------------------------------------------------------------------

def test_legacy_bilinear_by_hand():
    row = np.array([10.0, 20.0], np.float32).reshape(1, 2, 1)
    # Upsampling 2 -> 4 samples at 0, 0.5, 1, 1.5 (clamped): no half-pixel offset.
    assert pp.resize_bilinear(row, 1, 4).ravel().tolist() == [10.0, 15.0, 20.0, 20.0]
    # Downsampling 4 -> 2 samples at 0 and 2.
    four = np.array([1.0, 2.0, 3.0, 4.0], np.float32).reshape(1, 4, 1)
    assert pp.resize_bilinear(four, 1, 2).ravel().tolist() == [1.0, 3.0]
    same = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    np.testing.assert_array_equal(pp.resize_bilinear(same, 2, 2), same.astype(np.float32))


@pytest.mark.parametrize("in_hw,out_hw", [((7, 5), (11, 3)), ((13, 17), (6, 9)), ((4, 4), (9, 9))])
def test_resize_matches_pixelwise_definition(in_hw, out_hw):
    image = np.random.default_rng(1).integers(0, 256, in_hw + (3,), dtype=np.uint8)
    out = pp.resize_bilinear(image, *out_hw)
    assert out.dtype == np.float32 and out.shape == out_hw + (3,)
    np.testing.assert_array_equal(out, naive_legacy_resize(image, *out_hw))


def test_central_crop_and_crop_or_pad():
    image = np.zeros((240, 320, 3))
    assert pp.central_crop(image, 0.875).shape == (210, 280, 3)  # starts 15, 20
    marked = np.arange(16 * 16).reshape(16, 16, 1)
    np.testing.assert_array_equal(pp.central_crop(marked, 0.5), marked[4:12, 4:12])
    with pytest.raises(ValueError, match="central_fraction"):
        pp.central_crop(image, 0.0)
    small = np.ones((2, 3, 1))
    padded = pp.resize_with_crop_or_pad(small, 4, 6)
    assert padded.shape == (4, 6, 1) and padded.sum() == 6 and padded[1:3, 1:4].all()
    big = np.arange(25).reshape(5, 5, 1)
    np.testing.assert_array_equal(pp.resize_with_crop_or_pad(big, 3, 2), big[1:4, 1:3])


# --------------------------------------------------------------------------------------------
# The preprocessings, on images written to disk by Pillow
# --------------------------------------------------------------------------------------------

def test_inception_constant_colour(tmp_path):
    path = write_png(tmp_path / "c.png", np.broadcast_to([255, 0, 51], (120, 90, 3)))
    out = pp.preprocess_for("inception_v3", path, 299)
    assert out.shape == (1, 299, 299, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0, 0], [1.0, -1.0, 51 / 255 * 2 - 1], atol=1e-6)
    assert np.ptp(out.reshape(-1, 3), axis=0).max() == 0.0


def test_inception_pipeline_order(tmp_path):
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    path = write_png(tmp_path / "r.png", image)
    out = pp.preprocess_for("mobilenet_v1", path, 32)[0]
    unit = image.astype(np.float32) * np.float32(1 / 255)
    expected = (naive_legacy_resize(unit[4:60, 3:45], 32, 32) - np.float32(0.5)) * np.float32(2)
    np.testing.assert_array_equal(out, expected)
    assert out.min() >= -1.0 and out.max() <= 1.0


def test_vgg_ramp_exact(tmp_path):
    # 200 x 250 (HxW): smaller side 200 -> 256 x 320; in/out width 250/320 = 0.78125 (exact).
    ramp = np.broadcast_to(np.arange(250, dtype=np.uint8)[None, :, None], (200, 250, 3))
    path = write_png(tmp_path / "ramp.png", ramp)
    out = pp.preprocess_for("resnet_v1_50", path, 224)
    assert out.shape == (1, 224, 224, 3) and out.dtype == np.float32
    # Linear interpolation of a linear ramp is exact; the crop starts at column (320-224)//2 = 48.
    columns = (48 + np.arange(224)) * 0.78125
    for c, mean in enumerate(pp.IMAGENET_RGB_MEANS):
        np.testing.assert_allclose(out[0, :, :, c], np.broadcast_to(columns - mean, (224, 224)),
                                   rtol=0, atol=1e-4)


def test_vgg_portrait_and_means(tmp_path):
    path = write_png(tmp_path / "p.png", np.broadcast_to([200, 100, 50], (300, 200, 3)))
    out = pp.preprocess_for("vgg_16", path, 224)[0]
    np.testing.assert_allclose(out[0, 0], [200 - 123.68, 100 - 116.78, 50 - 103.94], atol=1e-4)
    assert pp._smallest_side_at_least(300, 200, 256) == (384, 256)
    assert pp._smallest_side_at_least(375, 500, 256) == (256, 341)  # rint(341.33)
    with pytest.raises(ValueError, match=r"crop 320x320 is larger.*\(384x256\)"):
        pp.preprocess_for("vgg_16", path, 320)


def test_jpeg_grayscale_and_rgba_inputs(tmp_path):
    rng = np.random.default_rng(3)
    smooth = np.clip(np.linspace(0, 255, 80)[None, :, None] + rng.normal(0, 2, (60, 80, 3)), 0, 255)
    jpeg = tmp_path / "photo.jpg"
    Image.fromarray(smooth.astype(np.uint8)).save(jpeg, quality=95)
    out = pp.preprocess_for("inception_v1", jpeg, 224)
    assert out.shape == (1, 224, 224, 3) and np.isfinite(out).all()
    expected = pp.preprocess_image(smooth.astype(np.uint8), 224, 224, "inception")
    assert np.abs(out - expected).mean() < 0.03  # JPEG loss only
    gray = tmp_path / "g.png"
    Image.fromarray(np.full((40, 40), 128, np.uint8), mode="L").save(gray)
    assert pp.preprocess_for("resnet_v2_50", gray, 224).shape == (1, 224, 224, 3)
    rgba = tmp_path / "a.png"
    Image.fromarray(np.full((40, 30, 4), 255, np.uint8), mode="RGBA").save(rgba)
    np.testing.assert_allclose(pp.preprocess_for("inception_v3", rgba, 16), 1.0)


def test_cifarnet_and_lenet(tmp_path):
    image = np.random.default_rng(4).integers(0, 256, (36, 30, 3), dtype=np.uint8)
    out = pp.preprocess_for("cifarnet", write_png(tmp_path / "x.png", image), 32)[0]
    assert out.shape == (32, 32, 3)
    # Width 30 is zero-padded by 1 on each side; height 36 is cropped by 2 on each side.
    assert np.all(out[:, 0] == out[0, 0]) and np.all(out[:, 31] == out[0, 0])  # the zero padding
    expected = np.zeros((32, 32, 3), np.float32)
    expected[:, 1:31] = image[2:34]
    expected = (expected - expected.mean()) / expected.std()
    np.testing.assert_allclose(out, expected, atol=1e-5)
    lenet = pp.preprocess_image(image, 28, 28, "lenet")[0]
    np.testing.assert_allclose(lenet, (image[4:32, 1:29].astype(np.float32) - 128) / 128)


def test_factory_choices(tmp_path):
    assert pp.preprocessing_name_for("inception_resnet_v2") == "inception"
    assert pp.preprocessing_name_for("mobilenet_v1") == "inception"
    assert pp.preprocessing_name_for("resnet_v1_101") == "vgg"
    assert pp.preprocessing_name_for("resnet_v2_152") == "vgg"  # the factory's (documented) choice
    assert pp.preprocessing_name_for("vgg_19") == "vgg"
    with pytest.raises(ValueError, match=r"'alexnet_v2' was not recognized.*preprocessing_name"):
        pp.preprocessing_name_for("alexnet_v2")
    path = write_png(tmp_path / "c.png", np.full((50, 50, 3), 255))
    out = pp.preprocess_for("alexnet_v2", path, 224, preprocessing_name="inception")
    np.testing.assert_allclose(out, 1.0)
    with pytest.raises(ValueError, match="unknown preprocessing 'imagenet'"):
        pp.preprocess_for("vgg_16", path, 224, preprocessing_name="imagenet")
    with pytest.raises(FileNotFoundError):
        pp.preprocess_for("vgg_16", tmp_path / "missing.jpg", 224)
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot decode image"):
        pp.preprocess_for("vgg_16", tmp_path / "bad.jpg", 224)


# --------------------------------------------------------------------------------------------
# top_k
# --------------------------------------------------------------------------------------------

def test_top_k_background_class(tmp_path):
    probs = np.zeros((1, 1001))
    probs[0, [0, 5, 900, 7]] = [0.1, 0.5, 0.3, 0.05]
    preds = pp.top_k(probs, k=3)
    assert [(p.index, p.class_id) for p in preds] == [(5, 4), (900, 899), (0, None)]
    assert [p.label for p in preds] == ["class 4", "class 899", "background"]
    assert preds[0].rank == 1 and preds[0].score == 0.5
    text = pp.format_top_k(preds)
    assert text.splitlines()[0].startswith(" 1.  0.50000") and "class 4" in text and "[  bg]" in text
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"name{i}\n" for i in range(1000)))
    assert [p.label for p in pp.top_k(probs[0], 2, labels=labels)] == ["name4", "name899"]
    labels.write_text("".join(f"{i}:n{i}\n" for i in range(1001)))  # slim's labels.txt incl. background
    assert [p.label for p in pp.top_k(probs, 2, labels=labels)] == ["n5", "n900"]


def test_top_k_without_background_and_errors():
    probs = np.array([0.2, 0.5, 0.2, 0.1])
    preds = pp.top_k(probs, 4)
    assert [p.index for p in preds] == [1, 0, 2, 3]  # ties broken by index
    assert [p.class_id for p in preds] == [1, 0, 2, 3]
    assert [p.label for p in pp.top_k(probs, 1, labels=["a", "b", "c", "d"])] == ["b"]
    assert pp.top_k(probs, 1, background_class=True)[0].class_id == 0
    with pytest.raises(ValueError, match=r"3 labels for 4 outputs"):
        pp.top_k(probs, 1, labels=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"k must be in \[1, 4\]"):
        pp.top_k(probs, 5)
    with pytest.raises(ValueError, match=r"one image.*\[2, 4\]"):
        pp.top_k(np.ones((2, 4)), 1)
    with pytest.raises(ValueError, match="not finite"):
        pp.top_k(np.array([0.1, np.nan]), 1)
