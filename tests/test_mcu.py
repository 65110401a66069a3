"""`edgekit mcu`: the int8 model in real TensorFlow Lite Micro (the `tflite-micro` wheel, reference kernels)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tflite_micro")

from tests.conftest import REPO
from toolkit.mcu.arena import find_min_arena, measure_arena
from toolkit.mcu.boards import BOARDS, fits
from toolkit.mcu.firmware import resolver_method
from toolkit.mcu.tflm import McuError, TflmModel, read_model, require_int8, try_arena

LIMIT = 300


@pytest.fixture(scope="module")
def mcu_run(small_run: Path, tmp_path_factory: pytest.TempPathFactory, mnist) -> tuple[Path, dict]:
    from toolkit.mcu.step import mcu_step
    from toolkit.steps.parity import parity_step

    run = tmp_path_factory.mktemp("mcu") / "run"
    shutil.copytree(small_run, run)
    from toolkit.run.documents import dump_document

    parity_step(run, limit=LIMIT, data=mnist)
    return run, dump_document(mcu_step(run, limit=LIMIT, data=mnist))  # mcu.json's JSON form


def test_tflm_agrees_with_litert_and_keras(mcu_run: tuple[Path, dict]) -> None:
    run, doc = mcu_run
    (res,) = doc["results"]
    assert res["artifact"] == "tflite-int8"
    par = res["parity"]
    assert par["images"] == LIMIT
    # Against Keras: parity's int8 floor for this model's own accuracy (it is trained on this CPU). Against LiteRT:
    # TFLM's reference kernels round differently from XNNPACK (a few int8 steps), so a top-1 may only swap where
    # LiteRT's two best outputs are within mcu's near-tie margin.
    assert par["passed"] and not par["failures"], par
    assert par["disagreements_litert"] == par["near_tie_disagreements_litert"], par
    assert {"CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= set(res["ops"])
    assert res["flash"]["model_bytes"] == (run / res["path"]).stat().st_size
    assert res["flash"]["runtime_code_bytes"] is None  # not measured, and said so
    assert json.loads((run / "mcu.json").read_text())["results"][0]["arena"] == res["arena"]
    # The TFLM row sits in parity.json beside the others, and the document still validates.
    parity = json.loads((run / "parity.json").read_text())
    rows = [r for r in parity["results"] if r["runtime"] == "tflm"]
    assert len(rows) == 1 and rows[0]["artifact"] == "tflite-int8"
    # Judged like the LiteRT row of the same file (the small run's int8 may miss the Keras tolerance: both do).
    litert = next(r for r in parity["results"] if r["artifact"] == "tflite-int8" and r["runtime"] == "tflite")
    assert (rows[0]["passed"], rows[0]["failures"]) == (litert["passed"], litert["failures"])
    assert parity["passed"] == all(r["passed"] for r in parity["results"])
    assert doc["parity_json"].startswith("updated")


def test_reported_arena_runs_and_less_fails(mcu_run: tuple[Path, dict]) -> None:
    run, doc = mcu_run
    (res,) = doc["results"]
    arena = res["arena"]
    data = (run / res["path"]).read_bytes()
    x = np.zeros((1, *res["input"]["shape"][1:]), np.int8)
    assert arena["head_bytes"] + arena["tail_bytes"] == arena["recorded_total"]
    assert arena["recommended_bytes"] > arena["min_bytes"]
    assert try_arena(data, x, arena["min_bytes"])
    assert not try_arena(data, x, int(arena["min_bytes"] * 0.8))
    assert not try_arena(data, x, arena["min_bytes"] - 16)
    assert "reference kernels" in arena["measured_with"]


# The boards' datasheet figures in KiB, written out here rather than read from toolkit/mcu/boards.py:
# (RAM, flash), flash None where it depends on the module fitted.
DATASHEETS = {
    "Arduino Nano 33 BLE Sense": (256, 1024),
    "STM32F746G-DISCO": (320, 1024),
    "nRF5340 DK": (512, 1024),
    "Raspberry Pi Pico": (264, 2048),
    "ESP32-S3 (DevKitC-1)": (512, None),
}


def test_boards_table(mcu_run: tuple[Path, dict]) -> None:
    (res,) = mcu_run[1]["results"]
    boards = {b["board"]: b for b in res["boards"]}
    assert set(boards) == set(DATASHEETS)
    arena = res["arena"]["recommended_bytes"]
    flash = res["flash"]["model_bytes"] + 16 * 1024  # the model and TFLM's cited 16 KiB core runtime
    for name, (ram_kib, flash_kib) in DATASHEETS.items():
        b = boards[name]
        assert b["source"]
        assert b["ram_left_bytes"] == ram_kib * 1024 - arena
        assert b["flash_left_bytes"] == (None if flash_kib is None else flash_kib * 1024 - flash)
    # The reference CNN in int8: one byte per weight (592,074 of them) plus the file's structure, so 0.6 MB of
    # flash: it fits every board's flash; the arena (activations: a 24x24x32 int8 map and a few smaller) is
    # far below every board's RAM.
    from toolkit.model.reference import REFERENCE_PARAMS

    assert REFERENCE_PARAMS < res["flash"]["model_bytes"] < REFERENCE_PARAMS + 64 * 1024
    assert 24 * 24 * 32 < arena < 128 * 1024
    assert all(b["fits"] for b in boards.values())


@pytest.mark.parametrize(
    ("board", "arena_kib", "flash_kib", "expected"),
    [
        ("Arduino Nano 33 BLE Sense", 256, 1024, True),  # exactly the RAM and the flash: nothing left, still fits
        ("Arduino Nano 33 BLE Sense", 257, 100, False),  # 1 KiB more RAM than the board has
        ("STM32F746G-DISCO", 257, 100, True),  # the same model on the 320 KiB board
        ("Raspberry Pi Pico", 10, 2049, False),  # 1 KiB more flash than the 2 MB on the board
        ("ESP32-S3 (DevKitC-1)", 500, 10 * 1024, True),  # flash is the module's: not a reason to refuse
        ("ESP32-S3 (DevKitC-1)", 513, 10, False),
    ],
)
def test_fits_against_the_datasheet_figures(board: str, arena_kib: int, flash_kib: int, expected: bool) -> None:
    (spec,) = [b for b in BOARDS if b.name == board]
    assert fits(arena_kib * 1024, flash_kib * 1024, spec).fits is expected


def test_float_model_is_refused_in_one_line(small_run: Path) -> None:
    path = small_run / "exports" / "model_fp32.tflite"
    with pytest.raises(McuError) as info:
        require_int8(read_model(path.read_bytes(), path.name), path.name)
    msg = str(info.value)
    assert "\n" not in msg and "float32" in msg and "edgekit export -p int8" in msg


def _tiny_int8(tmp: Path, name: str, layers: str) -> Path:
    """A tiny full-int8 model converted with the real TFLite converter."""
    pytest.importorskip("tensorflow")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    if layers == "cnn":
        shape: tuple[int, ...] = (16, 16, 3)
        model = keras.Sequential(
            [
                keras.Input(shape),
                keras.layers.Conv2D(8, 3, activation="relu"),
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dense(4, activation="softmax"),
            ]
        )
    else:  # an op TFLM has no kernel for
        shape = (8,)
        inp = keras.Input(shape)
        model = keras.Model(inp, keras.layers.Lambda(lambda t: tf.math.reduce_prod(t, axis=1, keepdims=True))(inp))
    rng = np.random.default_rng(0)

    def rep():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield [rng.random((1, *shape), dtype=np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    path = tmp / name
    path.write_bytes(conv.convert())
    return path


def test_unsupported_op_is_refused_in_one_line(tmp_path: Path) -> None:
    path = _tiny_int8(tmp_path, "prod_int8.tflite", "prod")
    with pytest.raises(McuError) as info:
        TflmModel(path.read_bytes(), path.name, arena_size=100_000)
    msg = str(info.value)
    assert "\n" not in msg and "REDUCE_PROD" in msg and "edgekit export -p int8" in msg


def test_other_model_arena_and_ops(tmp_path: Path) -> None:
    path = _tiny_int8(tmp_path, "tiny_int8.tflite", "cnn")
    data = path.read_bytes()
    info = read_model(data, path.name)
    assert info.ops == ("CONV_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX")
    x = np.zeros((1, 16, 16, 3), np.int8)
    arena = measure_arena(data, path.name, x)
    assert try_arena(data, x, arena.min_bytes) and not try_arena(data, x, int(arena.min_bytes * 0.8))
    assert find_min_arena(data, x, 64) == arena.min_bytes  # the search does not depend on its start


def test_resolver_method_names() -> None:
    assert resolver_method("CONV_2D") == "AddConv2D"
    assert resolver_method("DEPTHWISE_CONV_2D") == "AddDepthwiseConv2D"
    assert resolver_method("MAX_POOL_2D") == "AddMaxPool2D"
    assert resolver_method("FULLY_CONNECTED") == "AddFullyConnected"
    assert resolver_method("STRIDED_SLICE") == "AddStridedSlice"


def test_firmware_files(mcu_run: tuple[Path, dict]) -> None:
    """What the generated files declare; tests/test_mcu_firmware.py builds and runs them with TFLM on a Cortex-M4."""
    run, doc = mcu_run
    (res,) = doc["results"]
    out = run / "mcu" / "tflite-int8"
    header = (out / "model_data.h").read_text()
    assert f"constexpr size_t kModelDataLen = {res['flash']['model_bytes']};" in header
    assert f"constexpr size_t kTensorArenaSize = {res['arena']['recommended_bytes']};" in header
    assert "alignas(16) const unsigned char g_model_data[]" in (out / "model_data.cc").read_text()
    example = (out / "main_example.cc").read_text()
    assert "int Classify(" in example and "int main()" in example and "kSampleImage[784]" in example


def test_cli_mcu_prints_tables(mcu_run: tuple[Path, dict], edgekit) -> None:  # type: ignore[no-untyped-def]
    run, _ = mcu_run
    proc = edgekit("mcu", str(run), "-n", str(LIMIT))
    assert proc.returncode == 0, proc.stderr
    assert "TensorFlow Lite Micro" in proc.stdout and "arena" in proc.stdout
    assert "fits on" in proc.stdout and "Arduino Nano 33 BLE Sense" in proc.stdout


def test_cli_without_tflite_micro_names_the_extra(small_run: Path) -> None:
    code = (
        "import sys; sys.modules['tflite_micro'] = None; "
        f"sys.argv = ['edgekit', 'mcu', {str(small_run)!r}]; "
        "from toolkit.cli import main; main()"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "pip install 'edgekit[mcu]'" in lines[0]


def test_report_has_the_mcu_section(mcu_run: tuple[Path, dict]) -> None:
    from toolkit.reports import write_report

    run, doc = mcu_run
    md_path, html_path = write_report(run)
    md, html = md_path.read_text(), html_path.read_text()
    arena = doc["results"][0]["arena"]["min_bytes"]
    for text in (md, html):
        assert "Microcontrollers" in text and f"{arena:,} B" in text and "Arduino Nano 33 BLE Sense" in text
        assert "No microcontroller latency" in text
    assert "| tflite-int8 | tflm |" in md  # the TFLM row of parity.json


def test_cli_refuses_float_and_onnx_artifacts_in_one_line(small_run: Path, edgekit) -> None:  # type: ignore[no-untyped-def]
    for name, expected in (("tflite-fp32", "float32 input"), ("onnx-int8", "not a TFLite model")):
        proc = edgekit("mcu", str(small_run), "-a", name, "-n", "10")
        assert proc.returncode == 1
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0] and "edgekit export -p int8" in lines[0]


def test_mcu_json_is_a_valid_run_document(mcu_run: tuple[Path, dict]) -> None:
    """mcu.json is written through the typed documents and matches its published JSON Schema."""
    import json

    jsonschema = pytest.importorskip("jsonschema")
    from tests.conftest import REPO
    from toolkit.run.documents import McuDocument, load_document, unknown_fields

    run, _ = mcu_run
    doc = load_document(run / "mcu.json", McuDocument)
    assert not unknown_fields(doc)
    schema = json.loads((REPO / "docs" / "schemas" / "mcu.schema.json").read_text())
    jsonschema.validate(json.loads((run / "mcu.json").read_text()), schema)
