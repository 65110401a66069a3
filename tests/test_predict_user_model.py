"""`edgekit predict` on a user's model: real Keras models built here, exported to TFLite and ONNX, run
through the Typer command and the argparse fast path; classes must be what Keras gives on the same input."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

COLOURS = ("red", "green", "blue")
QUADRANTS = ("top-left", "top-right", "bottom-left", "bottom-right")

Run = Callable[..., tuple[int, str, str]]


def _set(layer: Any, *weights: np.ndarray) -> None:
    layer.set_weights([w.astype(np.float32) for w in weights])


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Small real models with set weights (deterministic, no training) and their exports.

    rgb: 16×16×3 with its own Rescaling, softmax over the dominant colour (fed 0..255, as Keras
    `image_dataset_from_directory` gives). quad: 12×12×1 fed 0..1, logits = 10 × each quadrant's
    brightness, exported into a run's `exports/` with a manifest naming the quadrants. vector: an MLP
    on 8 features. regression: 8×8×1 -> its mean brightness. two: a 2-channel image input.
    """
    pytest.importorskip("tensorflow")
    pytest.importorskip("onnxruntime")
    import keras

    from exporters.base import Precision
    from exporters.onnx_export import export_onnx
    from exporters.tflite_export import export_tflite
    from runtimes.spec import spec_from_tensors
    from toolkit.run import layout as A
    from toolkit.run.documents import ArtifactEntry

    root = tmp_path_factory.mktemp("user-models")
    rng = np.random.default_rng(0)

    inp = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255)(inp)
    conv = keras.layers.Conv2D(3, 1)
    x = keras.layers.AveragePooling2D(2)(conv(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(3, activation="softmax")
    rgb = keras.Model(inp, dense(x))
    _set(conv, np.eye(3).reshape(1, 1, 3, 3), np.zeros(3))
    _set(dense, 20 * np.eye(3), np.zeros(3))
    calibration = rng.uniform(0, 255, (32, 16, 16, 3)).astype(np.float32)
    rgb_dir = root / "rgb"
    rgb_files = {
        "tflite-fp32": export_tflite(rgb, rgb_dir, precision=Precision.FP32).path,
        "tflite-int8": export_tflite(rgb, rgb_dir, precision=Precision.INT8, calibration_data=calibration).path,
        "onnx-fp32": export_onnx(rgb, rgb_dir, precision=Precision.FP32).path,
    }

    quad = keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Flatten(), keras.layers.Dense(4)])
    kernel = np.zeros((12, 12, 4))
    for q, (ys, xs) in enumerate(
        [
            (slice(0, 6), slice(0, 6)),
            (slice(0, 6), slice(6, 12)),
            (slice(6, 12), slice(0, 6)),
            (slice(6, 12), slice(6, 12)),
        ]
    ):
        kernel[ys, xs, q] = 10 / 36
    _set(quad.layers[-1], kernel.reshape(144, 4), np.zeros(4))
    run = root / "quad-run"
    entries = []
    for result in (
        export_tflite(quad, run / A.EXPORTS_DIR, precision=Precision.FP32),
        export_onnx(quad, run / A.EXPORTS_DIR, precision=Precision.FP32),
    ):
        entry = ArtifactEntry.model_validate(result.manifest_entry(run))
        entry.model_spec = spec_from_tensors(
            result.input_spec,
            result.output_spec,
            value_range=(0.0, 1.0),
            output_kind="logits",
            class_names=QUADRANTS,
        )
        entries.append(entry)
    A.write_manifest(run, entries)
    bare_quad = root / "bare" / "quad.tflite"
    bare_quad.parent.mkdir()
    shutil.copyfile(run / A.EXPORTS_DIR / "model_fp32.tflite", bare_quad)

    vector = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3, activation="softmax")])
    regression = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(1)])
    _set(regression.layers[-1], np.full((64, 1), 1 / 64), np.zeros(1))
    two = keras.Sequential(
        [keras.Input((8, 8, 2)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation="softmax")]
    )
    return {
        "rgb": rgb,
        "rgb_files": rgb_files,
        "quad": quad,
        "quad_run": run,
        "bare_quad": bare_quad,
        "vector": export_tflite(vector, root / "vector", precision=Precision.FP32).path,
        "regression": regression,
        "regression_file": export_onnx(regression, root / "regression", precision=Precision.FP32).path,
        "two": export_onnx(two, root / "two", precision=Precision.FP32).path,
    }


def _colour_image(path: Path, colour: int, size: tuple[int, int], rng: np.random.Generator) -> Path:
    """A noisy picture whose dominant channel is `colour` (R, G or B)."""
    width, height = size
    pixels = rng.uniform(20, 70, (height, width, 3))
    pixels[..., colour] = rng.uniform(170, 230, (height, width))
    Image.fromarray(pixels.astype(np.uint8), mode="RGB").save(path)
    return path


def _quadrant_image(path: Path, quadrant: int, side: int) -> Path:
    """A dark grey picture with a bright square in one quadrant."""
    pixels = np.full((side, side), 30, np.uint8)
    half = side // 2
    y, x = divmod(quadrant, 2)
    pixels[y * half : (y + 1) * half, x * half : (x + 1) * half] = 220
    Image.fromarray(pixels, mode="L").save(path)
    return path


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run `edgekit predict ARGS` through the Typer app and through the fast path; both must agree.

    Returns (exit code, stdout, stderr) of the fast path.
    """
    from typer.testing import CliRunner

    from toolkit.cli import app
    from toolkit.cli.fast import try_predict

    def invoke(*args: str) -> tuple[int, str, str]:
        typer_result = CliRunner().invoke(app, ["predict", *args])
        capsys.readouterr()
        code = try_predict(list(args))
        assert code is not None, "the fast path handed this command line to Typer"
        captured = capsys.readouterr()
        assert typer_result.exit_code == code, typer_result.output
        assert typer_result.stdout == captured.out
        assert "Traceback" not in typer_result.output + captured.err
        return code, captured.out, captured.err

    return invoke


def _one_line_error(result: tuple[int, str, str], *fragments: str) -> None:
    code, _, err = result
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error:"), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _json(result: tuple[int, str, str]) -> dict[str, Any]:
    code, out, err = result
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


def test_rgb_model_classes_match_keras(models: dict[str, Any], run: Run, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    files = [_colour_image(tmp_path / f"c{i}.png", i % 3, (16, 16), rng) for i in range(6)]
    # Keras on the same input: the PNG's RGB bytes as float (the model rescales), no resize at 16×16.
    batch = np.stack([np.asarray(Image.open(f).convert("RGB"), np.float32) for f in files])
    expected = models["rgb"].predict(batch, verbose=0)
    assert list(expected.argmax(axis=1)) == [i % 3 for i in range(6)]
    for name, path in models["rgb_files"].items():
        doc = _json(run(str(path), *map(str, files), "--json", "-k", "2"))
        assert doc["preprocessing"]["mode"] == "resize" and doc["preprocessing"]["input_size"] == [16, 16, 3]
        assert doc["preprocessing"]["value_range"] == [0.0, 255.0] or name == "tflite-int8"
        assert [r["class"] for r in doc["results"]] == list(expected.argmax(axis=1)), name
        assert all("digit" not in r and len(r["top_k"]) == 2 for r in doc["results"])
        if name != "tflite-int8":
            got = np.array([r["probabilities"] for r in doc["results"]])
            assert np.abs(got - expected).max() < 1e-4, name


def test_rgb_model_resizes_any_picture(models: dict[str, Any], run: Run, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    files = [_colour_image(tmp_path / f"p{i}.png", i % 3, (40 + 7 * i, 30 + 5 * i), rng) for i in range(6)]
    batch = np.stack(
        [
            np.asarray(Image.open(f).convert("RGB").resize((16, 16), Image.Resampling.BILINEAR), np.float32)
            for f in files
        ]
    )
    expected = models["rgb"].predict(batch, verbose=0).argmax(axis=1)
    code, out, err = run(str(models["rgb_files"]["tflite-fp32"]), *map(str, files))
    assert code == 0, err
    assert "┃ class" in out and "digit" not in out and "resized to 16×16 RGB (bilinear)" in out
    doc = _json(run(str(models["rgb_files"]["onnx-fp32"]), *map(str, files), "--json"))
    assert [r["class"] for r in doc["results"]] == list(expected) == [i % 3 for i in range(6)]
    assert doc["results"][1]["source_size"] == [47, 35]
    saved = tmp_path / "seen"
    assert run(str(models["rgb_files"]["tflite-fp32"]), str(files[0]), "--save-inputs", str(saved))[0] == 0
    (png,) = saved.glob("*.png")
    assert Image.open(png).size == (16, 16) and Image.open(png).mode == "RGB"


def test_logits_model_names_classes_from_the_manifest(models: dict[str, Any], run: Run, tmp_path: Path) -> None:
    files = [_quadrant_image(tmp_path / f"q{q}.png", q, 12 if q % 2 else 24) for q in range(4)]
    grey = np.stack(
        [
            np.asarray(Image.open(f).convert("L").resize((12, 12), Image.Resampling.BILINEAR), np.float32) / 255
            for f in files
        ]
    )[..., np.newaxis]
    logits = models["quad"].predict(grey, verbose=0)
    assert list(logits.argmax(axis=1)) == [0, 1, 2, 3]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    run_dir = models["quad_run"]
    in_exports = str(run_dir / "exports" / "model_fp32.onnx")  # a file in a run: its manifest entry by sha256
    sources = [(str(run_dir), "tflite-fp32"), (str(run_dir), "onnx-fp32"), (in_exports, None)]
    for model, artifact in sources:
        extra = ["-a", artifact] if artifact else []
        doc = _json(run(model, *map(str, files), "--json", *extra))
        assert doc["output_kind"] == "logits" and doc["probabilities_from"] == "softmax of logits"
        assert doc["preprocessing"]["value_range"] == [0.0, 1.0]  # from the manifest
        assert [r["label"] for r in doc["results"]] == list(QUADRANTS)
        got = np.array([r["probabilities"] for r in doc["results"]])
        assert np.abs(got - probabilities).max() < 1e-4
    code, out, err = run(str(run_dir), str(files[1]), "-k", "2")
    assert code == 0 and "top-right" in out and "softmax of its logits" in out and "using tflite-fp32" in err


def test_bare_file_logits_are_detected_and_value_range_set(models: dict[str, Any], run: Run, tmp_path: Path) -> None:
    files = [_quadrant_image(tmp_path / f"q{q}.png", q, 12) for q in range(4)]
    doc = _json(run(str(models["bare_quad"]), *map(str, files), "--json", "--value-range", "0,1"))
    assert doc["output_kind"] == "logits" and "logits" in doc["notes"][0]
    assert doc["preprocessing"]["value_range_from"] == "--value-range"
    assert [r["class"] for r in doc["results"]] == [0, 1, 2, 3] and doc["results"][0]["label"] is None


def test_regression_model_prints_values(models: dict[str, Any], run: Run, tmp_path: Path) -> None:
    path = _quadrant_image(tmp_path / "q.png", 2, 8)
    x = np.asarray(Image.open(path), np.float32)[np.newaxis, ..., np.newaxis] / 255
    expected = float(models["regression"].predict(x, verbose=0)[0, 0])
    doc = _json(run(str(models["regression_file"]), str(path), "--json", "--value-range", "0,1"))
    (result,) = doc["results"]
    assert doc["output_kind"] == "values" and "top_k" not in result
    assert abs(result["values"][0] - expected) < 1e-5
    code, out, _ = run(str(models["regression_file"]), str(path), "--value-range", "0,1")
    assert code == 0 and "values" in out and f"{expected:.4f}"[:5] in out


def test_mnist_preprocess_on_request(models: dict[str, Any], run: Run, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    from tests.test_bad_inputs import tiny_onnx

    model = tiny_onnx(tmp_path / "five.onnx", 28, 5)  # 28×28 grey, 5 classes: not the reference model
    image = tmp_path / "one.png"
    picture = Image.new("L", (40, 40), 255)
    picture.paste(0, (18, 8, 22, 32))  # a dark "1" on white paper
    picture.save(image)
    doc = _json(run(str(model), str(image), "--json", "--mnist-preprocess"))
    assert doc["preprocessing"]["mode"] == "mnist" and doc["results"][0]["inverted"] is True
    doc = _json(run(str(model), str(image), "--json"))
    assert doc["preprocessing"]["mode"] == "resize" and len(doc["results"][0]["probabilities"]) == 5


def test_refusals_are_one_line(models: dict[str, Any], run: Run, tmp_path: Path) -> None:
    image = _colour_image(tmp_path / "c.png", 0, (16, 16), np.random.default_rng(3))
    rgb = str(models["rgb_files"]["tflite-fp32"])
    _one_line_error(run(str(models["vector"]), str(image)), "takes vectors (N, 8)", "image input")
    _one_line_error(run(rgb, str(image), "--mnist-preprocess"), "--mnist-preprocess", "(N, 16, 16, 3)")
    _one_line_error(run(str(models["two"]), str(image)), "2 channels", "(N, 8, 8, 2)")
    for bad in ("1,0", "abc", "0,1,2", "0,inf"):
        _one_line_error(run(rgb, str(image), f"--value-range={bad}"), "--value-range", bad)
    text = tmp_path / "notes.png"
    text.write_text("not an image\n")
    _one_line_error(run(rgb, str(image), str(text)), "notes.png", "not an image edgekit can read")
    _one_line_error(run(rgb, str(tmp_path / "absent.png")), "absent.png", "does not exist")


def test_negative_value_range_goes_through_typer(models: dict[str, Any], tmp_path: Path) -> None:
    """argparse takes `-1,1` for an option, so the fast path leaves it to Typer, which reads it as the value."""
    from typer.testing import CliRunner

    from toolkit.cli import app
    from toolkit.cli.fast import parse_predict

    image = str(_quadrant_image(tmp_path / "q.png", 1, 12))
    args = [str(models["bare_quad"]), image, "--json", "--value-range", "-1,1"]
    assert parse_predict(args) is None
    result = CliRunner().invoke(app, ["predict", *args])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["preprocessing"]["value_range"] == [-1.0, 1.0]


def test_user_model_predict_starts_without_heavy_imports(models: dict[str, Any], tmp_path: Path) -> None:
    """A model file in a run's exports/ reads the manifest's spec without pydantic, Typer or TensorFlow."""
    import subprocess
    import sys

    from tests.conftest import REPO

    image = _quadrant_image(tmp_path / "q.png", 3, 12)
    model = models["quad_run"] / "exports" / "model_fp32.tflite"
    code = (
        "import sys\n"
        f"sys.argv = ['edgekit', 'predict', {str(model)!r}, {str(image)!r}, '--json']\n"
        "from toolkit.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code in (0, None), exc.code\n"
        "heavy = [m for m in ('typer', 'pydantic', 'tensorflow', 'keras', 'rich') if m in sys.modules]\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "HEAVY []" in proc.stderr, proc.stderr
    assert json.loads(proc.stdout)["results"][0]["label"] == "bottom-right"
