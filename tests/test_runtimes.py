"""Runners on real exported artifacts: LiteRT, ONNX Runtime and Keras agree, and reject bad input clearly."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from runtimes import InputSpecError, ModelLoadError, RuntimeUnavailableError, make_runner
from runtimes.keras_runner import KerasRunner
from runtimes.ort_runner import OnnxRuntimeRunner
from runtimes.tflite_runner import TFLiteRunner
from toolkit.data.mnist import to_model_input


def artifact(run: Path, name: str) -> Path:
    manifest = json.loads((run / "manifest.json").read_text())
    return run / next(a["path"] for a in manifest["artifacts"] if a["name"] == name)


@pytest.fixture(scope="module")
def images(mnist) -> np.ndarray:
    return to_model_input(mnist.x_test[:64])


@pytest.fixture(scope="module")
def keras_probs(small_run: Path, images: np.ndarray) -> np.ndarray:
    with KerasRunner(small_run / "model.keras") as runner:
        return runner.infer(images)


# 1. Float runners match the Keras reference.
@pytest.mark.parametrize("name", ["tflite-fp32", "onnx-fp32"])
def test_fp32_runners_match_keras(small_run: Path, images: np.ndarray, keras_probs: np.ndarray, name: str) -> None:
    with make_runner(artifact(small_run, name)) as runner:
        probs = runner.infer(images)
    assert probs.dtype == np.float32 and probs.shape == (64, 10)
    np.testing.assert_allclose(probs, keras_probs, atol=1e-5)


def test_litert_is_preferred_and_tf_lite_gives_identical_results(small_run: Path, images: np.ndarray) -> None:
    path = artifact(small_run, "tflite-int8")
    with TFLiteRunner(path) as litert:
        assert litert.backend() == "ai_edge_litert"
        a = litert.infer(images)
    pytest.importorskip("tensorflow")
    with TFLiteRunner(path, backend="tensorflow") as tf_lite:
        assert tf_lite.backend() == "tensorflow"
        b = tf_lite.infer(images)
    np.testing.assert_array_equal(a, b)


def test_tflite_runtime_backend_is_refused_under_numpy2(small_run: Path) -> None:
    if int(np.__version__.split(".")[0]) < 2:
        pytest.skip("numpy<2: tflite_runtime would be usable")
    with pytest.raises(RuntimeUnavailableError, match="numpy<2"):
        TFLiteRunner(artifact(small_run, "tflite-fp32"), backend="tflite_runtime").activate()


# 2. Quantized I/O is handled inside the runner.
def test_int8_runner_quantizes_input_and_dequantizes_output(small_run: Path, images: np.ndarray, keras_probs) -> None:
    with TFLiteRunner(artifact(small_run, "tflite-int8")) as runner:
        spec = runner.input_spec()
        assert spec.dtype == "int8" and spec.zero_point == -128
        assert spec.scale == pytest.approx(1 / 255, rel=1e-3)
        assert runner.output_spec().dtype == "int8"
        probs = runner.infer(images)
    assert probs.dtype == np.float32
    assert probs.min() >= 0 and probs.max() <= 1
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=0.05)
    assert (probs.argmax(1) == keras_probs.argmax(1)).mean() >= 0.9


@pytest.mark.parametrize("name", ["tflite-fp32", "tflite-int8", "onnx-int8", "keras-fp32"])
def test_batches_of_any_size_match_single_images(small_run: Path, images: np.ndarray, name: str) -> None:
    path = small_run / "model.keras" if name == "keras-fp32" else artifact(small_run, name)
    with make_runner(path) as runner:
        whole = runner.infer(images[:7])
        ones = np.concatenate([runner.infer(images[i : i + 1]) for i in range(7)])
        again = runner.infer(images[:32])[:7]
    np.testing.assert_allclose(whole, ones, atol=1e-6)
    np.testing.assert_allclose(whole, again, atol=1e-6)


@pytest.mark.parametrize("threads", [1, 2])
def test_thread_count_does_not_change_results(small_run: Path, images: np.ndarray, threads: int) -> None:
    for name in ("tflite-fp32", "onnx-fp32"):
        with (
            make_runner(artifact(small_run, name), num_threads=threads) as a,
            make_runner(artifact(small_run, name)) as b,
        ):
            np.testing.assert_allclose(a.infer(images), b.infer(images), atol=1e-6)


def test_xnnpack_can_be_switched_off(small_run: Path, images: np.ndarray) -> None:
    path = artifact(small_run, "tflite-fp32")
    with TFLiteRunner(path) as on, TFLiteRunner(path, use_xnnpack=False) as off:
        assert on.is_delegated() and not off.is_delegated()
        np.testing.assert_allclose(on.infer(images), off.infer(images), atol=1e-5)


# 3. Lifecycle and input checks.
def test_lifecycle(small_run: Path, images: np.ndarray) -> None:
    runner = OnnxRuntimeRunner(artifact(small_run, "onnx-fp32"))
    with pytest.raises(RuntimeError, match="not active"):
        runner.infer(images)
    with runner:
        assert runner.is_active
        with pytest.raises(RuntimeError, match="already active"):
            runner.activate()
    assert not runner.is_active


@pytest.mark.parametrize("name", ["tflite-fp32", "tflite-int8", "onnx-fp32"])
def test_bad_inputs_are_refused_with_received_and_expected(small_run: Path, images: np.ndarray, name: str) -> None:
    with make_runner(artifact(small_run, name)) as runner:
        with pytest.raises(InputSpecError, match=r"float64 received; expected float32"):
            runner.infer(images.astype(np.float64))
        with pytest.raises(InputSpecError, match=r"\(2, 32, 32, 1\) received; expected \(N, 28, 28, 1\)"):
            runner.infer(np.zeros((2, 32, 32, 1), np.float32))
        with pytest.raises(InputSpecError, match=r"expected \(N, 28, 28, 1\)"):
            runner.infer(np.zeros((28, 28), np.float32))
        with pytest.raises(InputSpecError, match="empty"):
            runner.infer(np.zeros((0, 28, 28, 1), np.float32))


def test_threads_must_be_positive(small_run: Path) -> None:
    with pytest.raises(InputSpecError, match="num_threads"):
        TFLiteRunner(artifact(small_run, "tflite-fp32"), num_threads=0)


# 4. Bad model files: one clear error each.
def _bad_files(small_run: Path, tmp: Path) -> list[tuple[Path, str]]:
    rng = np.random.default_rng(0)
    cases = []
    (tmp / "empty.tflite").write_bytes(b"")
    cases.append((tmp / "empty.tflite", "empty"))
    (tmp / "random.tflite").write_bytes(rng.bytes(4096))
    cases.append((tmp / "random.tflite", "not a TFLite model"))
    (tmp / "random.onnx").write_bytes(rng.bytes(4096))
    cases.append((tmp / "random.onnx", "could not be loaded as an ONNX model"))
    (tmp / "was_onnx.tflite").write_bytes(artifact(small_run, "onnx-fp32").read_bytes())
    cases.append((tmp / "was_onnx.tflite", "looks like an ONNX model"))
    (tmp / "was_tflite.onnx").write_bytes(artifact(small_run, "tflite-fp32").read_bytes())
    cases.append((tmp / "was_tflite.onnx", "is a TFLite model, not ONNX"))
    good = artifact(small_run, "tflite-fp32").read_bytes()
    (tmp / "truncated.tflite").write_bytes(good[: len(good) // 3])
    cases.append((tmp / "truncated.tflite", "could not be loaded as a TFLite model"))
    onnx_good = artifact(small_run, "onnx-fp32").read_bytes()
    (tmp / "truncated.onnx").write_bytes(onnx_good[: len(onnx_good) // 3])
    cases.append((tmp / "truncated.onnx", "could not be loaded as an ONNX model"))
    (tmp / "random.keras").write_bytes(rng.bytes(4096))
    cases.append((tmp / "random.keras", "not a Keras model"))
    cases.append((tmp / "missing.tflite", "does not exist"))
    (tmp / "dir.onnx").mkdir()
    cases.append((tmp / "dir.onnx", "is a directory"))
    return cases


def test_bad_model_files_raise_model_load_error(small_run: Path, tmp_path: Path) -> None:
    for path, message in _bad_files(small_run, tmp_path):
        with pytest.raises(ModelLoadError, match=message) as info:
            make_runner(path).activate()
        assert "\n" not in str(info.value), path


def test_unknown_suffix(tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match=r"unknown model type '\.pt'"):
        make_runner(tmp_path / "model.pt")


def test_keras_thread_setting_after_init_is_refused(small_run: Path) -> None:
    tf = pytest.importorskip("tensorflow")
    tf.constant(1.0) + 1  # TF is initialised from here on
    current = tf.config.threading.get_intra_op_parallelism_threads()
    want = 1 if current != 1 else 2
    with pytest.raises(RuntimeUnavailableError, match="fresh process"):
        KerasRunner(small_run / "model.keras", num_threads=want).activate()


def test_no_native_log_leaks_to_stderr(small_run: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with TFLiteRunner(artifact(small_run, "tflite-fp32"), num_threads=os.cpu_count()) as runner:
        runner.infer(np.zeros((1, 28, 28, 1), np.float32))
    assert "XNNPACK" not in capfd.readouterr().err
