"""`edgekit predict` and toolkit.inputs.images/photo: reading any image, MNIST-style preprocessing, one-line errors."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.test_cli import assert_one_line_error
from toolkit.inputs.errors import ImageError
from toolkit.inputs.images import MAX_PIXELS, read_grey
from toolkit.inputs.photo import CENTRE, prepare, to_mnist

# Held-out digits: the first two test images of each class (20 digits, not used in training).
PER_CLASS = 2


def photo_style(digit: np.ndarray, rng: np.random.Generator, *, size: tuple[int, int], scale: int = 3) -> Image.Image:
    """An MNIST digit as a photo of ink on paper: dark ink on light, tinted RGB, upscaled, off-centre, noisy.

    Args:
        digit: uint8 [28, 28], light on dark (MNIST).
        size: (width, height) of the picture; the upscaled digit (28 × scale) is placed at a random offset.
    """
    side = 28 * scale
    ink = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC), np.float32) / 255
    width, height = size
    paper = np.array([238, 232, 220], np.float32) * rng.uniform(0.9, 1.0)
    pen = np.array([30, 35, 60], np.float32)
    canvas = np.ones((height, width, 3), np.float32) * paper
    canvas += np.linspace(-12, 12, width, dtype=np.float32)[None, :, None]  # uneven lighting
    y = int(rng.integers(0, height - side + 1)) if height > side else 0
    x = int(rng.integers(0, width - side + 1)) if width > side else 0
    h, w = min(side, height - y), min(side, width - x)
    alpha = ink[:h, :w, None]
    canvas[y : y + h, x : x + w] = canvas[y : y + h, x : x + w] * (1 - alpha) + pen * alpha
    canvas += rng.normal(0, 4, canvas.shape).astype(np.float32)
    return Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8), mode="RGB")


def held_out_indices(mnist, per_class: int = PER_CLASS) -> list[int]:
    labels = np.asarray(mnist.y_test)
    return sorted(int(i) for d in range(10) for i in np.flatnonzero(labels == d)[:per_class])


@pytest.fixture(scope="module")
def trained_tflite(tmp_path_factory: pytest.TempPathFactory, mnist) -> Path:
    """A better model than small_run's (87 % after 1 epoch on 4,000 images): 1 epoch on 30,000 (~96 %, ~8 s)."""
    pytest.importorskip("tensorflow")
    from exporters.base import ExportFormat, Precision
    from toolkit.model.reference import TrainConfig
    from toolkit.steps.export import export_step
    from toolkit.steps.train import train_step

    run = tmp_path_factory.mktemp("better-run")
    train_step(run, mnist, TrainConfig(epochs=1, train_limit=30000))
    export_step(run, [(ExportFormat.TFLITE, Precision.FP32)])
    return run / "exports" / "model_fp32.tflite"


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory: pytest.TempPathFactory, mnist) -> dict[str, list[Path] | list[int]]:
    """Photo-style PNG/JPEG files (RGB, 84×84 to 200×150, offset) and MNIST-style 28×28 PNGs of the same digits."""
    out = tmp_path_factory.mktemp("digits")
    rng = np.random.default_rng(4)
    photos, plain, labels = [], [], []
    sizes = [(120, 90), (84, 84), (90, 130), (200, 150)]
    for k, i in enumerate(held_out_indices(mnist)):
        label = int(mnist.y_test[i])
        size = sizes[k % len(sizes)]
        image = photo_style(mnist.x_test[i], rng, size=size, scale=5 if size[0] >= 200 else 3)
        path = out / f"photo-{k:02d}-{label}.{'jpg' if k % 2 else 'png'}"
        image.save(path, quality=85) if k % 2 else image.save(path)
        photos.append(path)
        mnist_style = out / f"mnist-{k:02d}-{label}.png"
        Image.fromarray(mnist.x_test[i]).save(mnist_style)
        plain.append(mnist_style)
        labels.append(label)
    return {"photos": photos, "mnist": plain, "labels": labels}


def _predicted(edgekit, model: Path, files: list[Path], *extra: str) -> list[int]:
    proc = edgekit("predict", str(model), *map(str, files), "--json", *extra)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # stdout is the JSON document and nothing else
    assert [r["image"] for r in doc["results"]] == [str(f) for f in files]
    return [r["digit"] for r in doc["results"]]


# -- accuracy: preprocessing is what makes photos work ----------------------------------------------
def test_photo_style_digits_need_the_preprocessing(edgekit, trained_tflite: Path, digit_files) -> None:
    labels = np.array(digit_files["labels"])
    n = len(labels)
    photo = np.array(_predicted(edgekit, trained_tflite, digit_files["photos"]))
    photo_raw = np.array(_predicted(edgekit, trained_tflite, digit_files["photos"], "--no-preprocess"))
    plain = np.array(_predicted(edgekit, trained_tflite, digit_files["mnist"]))
    plain_raw = np.array(_predicted(edgekit, trained_tflite, digit_files["mnist"], "--no-preprocess"))
    right = {
        k: int((v == labels).sum())
        for k, v in {"photo": photo, "photo_raw": photo_raw, "mnist": plain, "mnist_raw": plain_raw}.items()
    }
    print(f"correct of {n}: {right}")  # shown with -s; the README quotes the figures
    assert right["photo"] >= 0.9 * n, right  # ≥ 9 of 10 photo-style digits
    assert right["mnist"] >= 0.9 * n and right["mnist_raw"] >= 0.9 * n, right  # MNIST-style: either way
    assert right["photo_raw"] <= 0.5 * n, right  # without preprocessing, photos are mostly wrong
    assert (photo == plain).mean() >= 0.9  # a photo and its MNIST original get the same answer


def test_mnist_digit_survives_preprocessing(mnist) -> None:
    for i in held_out_indices(mnist, 1):
        original = mnist.x_test[i].astype(np.float32) / 255
        pixels, inverted, (_, _, h, w) = to_mnist(original)
        assert not inverted and max(h, w) <= 20 and pixels.shape == (28, 28)
        assert pixels.min() >= 0.0 and pixels.max() <= 1.0
        assert np.corrcoef(pixels.ravel(), original.ravel())[0, 1] > 0.9
        ys, xs = np.indices(pixels.shape)
        cy, cx = (pixels * ys).sum() / pixels.sum(), (pixels * xs).sum() / pixels.sum()
        assert abs(cy - CENTRE) <= 0.6 and abs(cx - CENTRE) <= 0.6


def test_photo_is_inverted_cropped_scaled_and_centred(mnist, tmp_path: Path) -> None:
    i = held_out_indices(mnist, 1)[3]
    path = tmp_path / "photo.png"
    photo_style(mnist.x_test[i], np.random.default_rng(0), size=(300, 200), scale=6).save(path)
    (p,) = prepare(path)
    assert p.inverted and p.source_size == (300, 200)
    assert p.box is not None
    _, _, h, w = p.box
    assert max(h, w) >= 100  # the digit, not the whole page
    original = mnist.x_test[i].astype(np.float32) / 255
    assert np.corrcoef(p.pixels.ravel(), original.ravel())[0, 1] > 0.85
    rows, cols = np.flatnonzero(p.pixels.max(1) > 0), np.flatnonzero(p.pixels.max(0) > 0)
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= 21  # fits the 20×20 box (+1 for Lanczos ringing)


@pytest.mark.parametrize(
    ("background", "ink", "inverted"),
    [(0.0, 1.0, False), (1.0, 0.0, True), (0.55, 0.05, True), (0.45, 0.95, False), (0.8, 0.3, True)],
)
def test_polarity_follows_the_background(mnist, background: float, ink: float, inverted: bool) -> None:
    digit = mnist.x_test[held_out_indices(mnist, 1)[8]].astype(np.float32) / 255
    grey = np.kron(background + (ink - background) * digit, np.ones((2, 2), np.float32))
    pixels, was_inverted, _ = to_mnist(grey)
    assert was_inverted is inverted
    assert np.corrcoef(pixels.ravel(), digit.ravel())[0, 1] > 0.85


def test_no_preprocess_only_greys_and_resizes(mnist, tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    photo_style(mnist.x_test[0], np.random.default_rng(1), size=(120, 90)).save(path)
    (p,) = prepare(path, preprocess=False)
    assert p.pixels.shape == (28, 28) and not p.inverted and p.box is None
    assert p.pixels.mean() > 0.5  # still light paper: nothing was inverted


# -- every way of storing the same digit gives the same model input ---------------------------------
def _variants(digit: np.ndarray, tmp: Path) -> dict[str, Path]:
    dark = 255 - digit  # dark ink on white, like a scan
    big = np.kron(dark, np.ones((3, 3), np.uint8))
    grey = Image.fromarray(big)
    files: dict[str, Path] = {}

    def save(name: str, image: Image.Image, **kw: object) -> None:
        files[name] = tmp / name
        image.save(files[name], **kw)

    save("grey.png", grey)
    save("rgb.png", grey.convert("RGB"))
    save("rgba-opaque.png", grey.convert("RGBA"))
    save("palette.png", grey.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=64))
    save("bilevel.png", grey.point(lambda v: 255 if v > 128 else 0).convert("1"))
    save("grey.bmp", grey)
    save("rgb.jpg", grey.convert("RGB"), quality=90)
    save("grey.gif", grey)
    sixteen = Image.fromarray((big.astype(np.uint16) * 257).astype(np.uint16))  # 16-bit greyscale
    save("grey16.png", sixteen)
    # A drawing on a transparent background: black strokes, alpha = ink.
    strokes = np.zeros((*big.shape, 4), np.uint8)
    strokes[..., 3] = 255 - big
    save("transparent.png", Image.fromarray(strokes, mode="RGBA"))
    la = np.stack([np.zeros_like(big), 255 - big], axis=-1)
    save("transparent-la.png", Image.fromarray(la, mode="LA"))
    files["grey.npy"] = tmp / "grey.npy"
    np.save(files["grey.npy"], big)
    files["float.npy"] = tmp / "float.npy"
    np.save(files["float.npy"], (big.astype(np.float32) / 255)[..., None])
    files["rgb16.npy"] = tmp / "rgb16.npy"
    np.save(files["rgb16.npy"], np.repeat((big.astype(np.uint16) * 257)[..., None], 3, axis=-1))
    return files


def test_modes_and_formats_give_the_same_input(mnist, tmp_path: Path) -> None:
    digit = mnist.x_test[held_out_indices(mnist, 1)[2]]
    files = _variants(digit, tmp_path)
    reference = prepare(files["grey.png"])[0].pixels
    assert Image.open(files["grey16.png"]).mode.startswith("I")  # really 16-bit
    assert Image.open(files["palette.png"]).mode == "P"
    for name, path in files.items():
        (p,) = prepare(path)
        assert p.pixels.shape == (28, 28) and p.pixels.dtype == np.float32, name
        similarity = np.corrcoef(p.pixels.ravel(), reference.ravel())[0, 1]
        assert similarity > (0.9 if name in ("bilevel.png", "rgb.jpg") else 0.98), (name, similarity)
        assert p.inverted, name  # dark ink on white; transparent drawings are put onto white paper


def test_npy_batches_and_values(tmp_path: Path, mnist) -> None:
    batch = mnist.x_test[:5][..., None]
    np.save(tmp_path / "batch.npy", batch)
    names = [name for name, _ in read_grey(tmp_path / "batch.npy")]
    assert names == [f"{tmp_path / 'batch.npy'}[{i}]" for i in range(5)]
    np.save(tmp_path / "b3.npy", mnist.x_test[:3])  # (N, 28, 28): a batch, not an RGB image
    assert len(read_grey(tmp_path / "b3.npy")) == 3
    np.save(tmp_path / "f255.npy", mnist.x_test[0].astype(np.float64))
    np.testing.assert_allclose(read_grey(tmp_path / "f255.npy")[0][1], mnist.x_test[0] / 255, atol=1e-6)


@pytest.mark.parametrize(
    ("array", "fragment"),
    [
        (np.array([{"a": 1}], dtype=object), "never loads pickled objects"),
        (np.zeros(3), "has shape (3,)"),
        (np.full((28, 28), np.nan), "NaN"),
        (np.full((28, 28), -1.0), "negative"),
        (np.full((28, 28), 1e6), "values up to"),
        (np.zeros((0, 28)), "holds no pixels"),
        (np.array(["a", "b"]), "holds <U1 data"),
    ],
)
def test_bad_npy_is_refused(tmp_path: Path, array: np.ndarray, fragment: str) -> None:
    path = tmp_path / "bad.npy"
    np.save(path, array, allow_pickle=True)
    with pytest.raises(ImageError, match=r"bad\.npy") as info:
        read_grey(path)
    assert fragment in str(info.value)


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that declares a size but holds almost no data (Pillow reads the size without decoding)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 8)) + chunk(b"IEND", b"")
    )


def _bad_images(tmp: Path, good_png: Path) -> list[tuple[Path, str]]:
    empty = tmp / "empty.png"
    empty.write_bytes(b"")
    text = tmp / "notes.png"
    text.write_text("not an image\n")
    truncated = tmp / "truncated.png"
    truncated.write_bytes(good_png.read_bytes()[: good_png.stat().st_size // 2])
    folder = tmp / "folder.png"
    folder.mkdir()
    big = tmp / "big.png"
    side = int(MAX_PIXELS**0.5) + 100
    _png_header_only(big, side, side)
    warned = tmp / "warned.png"  # Pillow itself only warns at this size
    _png_header_only(warned, 10_000, 10_000)
    bomb = tmp / "bomb.png"
    _png_header_only(bomb, 100_000, 100_000)
    lab = tmp / "lab.tif"
    Image.new("LAB", (30, 30)).save(lab)
    blank = tmp / "blank.png"
    Image.new("L", (50, 50), 200).save(blank)
    fake_npy = tmp / "fake.npy"
    fake_npy.write_bytes(b"PK\x03\x04 not numpy")
    return [
        (tmp / "missing.png", "does not exist"),
        (empty, "empty (0 bytes)"),
        (text, "not an image"),
        (truncated, "corrupt or truncated"),
        (folder, "is a directory"),
        (big, "over edgekit's limit of 64 megapixels"),
        (warned, "over edgekit's limit of 64 megapixels"),
        (bomb, "far too large"),
        (lab, "pixel mode LAB"),
        (blank, "no digit found"),
        (fake_npy, "not a .npy array"),
    ]


def test_bad_images_are_one_line_errors(edgekit, small_run: Path, tmp_path: Path, digit_files) -> None:
    model = small_run / "exports" / "model_fp32.tflite"
    for path, fragment in _bad_images(tmp_path, digit_files["photos"][0]):
        # The good image first: one bad file fails the whole call, naming that file.
        proc = edgekit("predict", str(model), str(digit_files["photos"][0]), str(path))
        assert_one_line_error(proc, str(path), fragment)


# -- the command ------------------------------------------------------------------------------------
def test_predict_table_top_k_and_saved_inputs(edgekit, small_run: Path, digit_files, tmp_path: Path) -> None:
    files = [str(p) for p in digit_files["photos"][:3]]
    proc = edgekit(
        "predict",
        str(small_run / "exports" / "model_int8.tflite"),
        *files,
        "-k",
        "3",
        "--save-inputs",
        str(tmp_path / "seen"),
    )
    assert proc.returncode == 0, proc.stderr
    assert "Predictions by model_int8.tflite" in proc.stdout and "top 3" in proc.stdout
    for f in files:
        assert Path(f).name in proc.stdout
    saved = sorted((tmp_path / "seen").glob("*.png"))
    assert len(saved) == 3 and Image.open(saved[0]).size == (28, 28)
    proc = edgekit("predict", str(small_run / "exports" / "model_fp32.onnx"), files[0], "--json", "-k", "3")
    doc = json.loads(proc.stdout)
    (r,) = doc["results"]
    assert doc["backend"] == "onnxruntime" and len(r["top_k"]) == 3 and len(r["probabilities"]) == 10
    assert r["top_k"][0]["digit"] == r["digit"] and abs(sum(r["probabilities"]) - 1) < 1e-3
    assert r["inverted"] is True and r["source_size"] == [120, 90]


def test_predict_from_a_run_directory_checks_the_sha256(edgekit, run_copy: Path, digit_files) -> None:
    image = str(digit_files["photos"][0])
    proc = edgekit("predict", str(run_copy), image)
    assert proc.returncode == 0, proc.stderr
    assert "using tflite-fp32" in proc.stderr and "Predictions by tflite-fp32" in proc.stdout
    proc = edgekit("predict", str(run_copy), image, "-a", "onnx-int8", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["artifact"] == "onnx-int8"
    assert_one_line_error(edgekit("predict", str(run_copy), image, "-a", "tflite-int4"), "no artifact tflite-int4")
    target = run_copy / "exports" / "model_int8.tflite"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    assert_one_line_error(
        edgekit("predict", str(run_copy), image, "-a", "tflite-int8"), "model_int8.tflite", "does not match the sha256"
    )
    assert_one_line_error(
        edgekit("predict", str(run_copy / "exports" / "model_fp32.tflite"), image, "-a", "tflite-fp32"),
        "applies to a run directory or bundle",
    )
