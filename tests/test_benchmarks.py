"""Tests for benchmarks/: real runtimes on tiny real models, structural checks only (no speed asserts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import TypedDict

import numpy as np
import pytest

from benchmarks import environment
from benchmarks.environment import capture_environment
from benchmarks.errors import BenchmarkError
from benchmarks.harness import REPO_ROOT, run_worker, thread_counts, worker_env
from benchmarks.latency import LatencyStats, measure_latency, summarise
from benchmarks.worker import make_batch
from runtimes.base import Runner
from runtimes.errors import EdgekitError
from runtimes.registry import make_runner


class Settings(TypedDict):
    warmup_runs: int
    warmup_seconds: float
    min_runs: int
    min_seconds: float


# Small settings so each timed phase takes milliseconds on the tiny models.
QUICK: Settings = {"warmup_runs": 2, "warmup_seconds": 0.0, "min_runs": 50, "min_seconds": 0.0}

WORKER_FIELDS = {
    "model",
    "runtime",
    "backend",
    "runtime_version",
    "threads",
    "load_ms",
    "activate_ms",
    "first_inference_ms",
    "peak_rss_mb",
    "results",
}

ENV_KEYS = {
    "cpu_model",
    "machine",
    "cores_logical",
    "cores_available",
    "os",
    "kernel",
    "bitness",
    "python",
    "numpy",
    "runtime_versions",
    "cpu_governor",
    "cpu_freq_cur_mhz",
    "cpu_freq_max_mhz",
    "hostname",
    "timestamp_utc",
}


# -- tiny real models ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """[N,28,28,1] -> Reshape [N,784] -> MatMul 784x10 -> Softmax, built with onnx.helper."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array((rng.standard_normal((784, 10)) * 0.01).astype(np.float32), "w")
    shape = numpy_helper.from_array(np.array([-1, 784], dtype=np.int64), "shape")
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["x", "shape"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 28, 28, 1])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 10])],
        initializer=[weights, shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    # onnx may default to a newer IR version than the installed onnxruntime reads; 8 matches opset 17.
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Input(28,28,1) -> Flatten -> Dense(10, softmax), saved as .keras and converted to .tflite."""
    pytest.importorskip("tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    keras = tf.keras
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")]
    )
    out = tmp_path_factory.mktemp("keras")
    keras_path = out / "tiny.keras"
    model.save(keras_path)
    tflite_path = out / "tiny.tflite"
    tflite_path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return keras_path, tflite_path


@pytest.fixture(scope="module")
def tflite_model(keras_files: tuple[Path, Path]) -> Path:
    return keras_files[1]


@pytest.fixture(params=["onnx", "tflite"])
def model_path(request: pytest.FixtureRequest) -> Path:
    path: Path = request.getfixturevalue(f"{request.param}_model")
    return path


@pytest.fixture
def runner(onnx_model: Path) -> Iterator[Runner]:
    with make_runner(onnx_model, num_threads=1) as active:
        yield active


@pytest.fixture(scope="module")
def inputs_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three images: fewer than the batch of 4 the worker tests ask for, so tiling is exercised."""
    rng = np.random.default_rng(1)
    path = tmp_path_factory.mktemp("inputs") / "images.npy"
    np.save(path, rng.random((3, 28, 28, 1), dtype=np.float32))
    return path


def images(n: int) -> np.ndarray:
    return np.random.default_rng(2).random((n, 28, 28, 1), dtype=np.float32)


def assert_consistent(stats: LatencyStats | dict[str, object], *, batch_size: int, min_runs: int) -> None:
    s = stats.to_dict() if isinstance(stats, LatencyStats) else stats
    assert s["batch_size"] == batch_size
    assert isinstance(s["runs"], int) and s["runs"] >= min_runs
    values = [s[k] for k in ("min_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms", "std_ms")]
    assert all(isinstance(v, float) and np.isfinite(v) and v >= 0 for v in values)
    mn, p50, p90, p99, mx, mean, _std = (float(v) for v in values)  # type: ignore[arg-type]
    assert mn <= p50 <= p90 <= p99 <= mx
    assert mn <= mean <= mx
    assert isinstance(s["throughput_ips"], float) and s["throughput_ips"] > 0
    assert s["throughput_ips"] == pytest.approx(batch_size / (mean / 1000.0))
    assert isinstance(s["total_s"], float) and s["total_s"] > 0


# -- measure_latency -----------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [1, 4])
def test_measure_latency_real_runners(model_path: Path, batch_size: int) -> None:
    with make_runner(model_path, num_threads=1) as runner:
        stats = measure_latency(runner, images(batch_size), **QUICK)
    assert_consistent(stats, batch_size=batch_size, min_runs=50)
    assert stats.threads == 1
    d = stats.to_dict()
    assert set(d) == {f.name for f in fields(LatencyStats)}
    json.dumps(d)


def test_max_seconds_stops_before_min_runs(runner: Runner) -> None:
    stats = measure_latency(
        runner,
        images(1),
        warmup_runs=1,
        warmup_seconds=0.0,
        min_runs=10**9,
        min_seconds=0.0,
        max_seconds=0.05,
    )
    assert 1 <= stats.runs < 10**9
    # The loop only exits on the cap once 0.05 s of the timed phase have passed.
    assert stats.total_s >= 0.05


def test_min_seconds_keeps_running_after_min_runs(runner: Runner) -> None:
    stats = measure_latency(runner, images(1), warmup_runs=0, warmup_seconds=0.0, min_runs=1, min_seconds=0.05)
    assert stats.runs >= 1
    assert stats.total_s >= 0.05


def test_default_threads_recorded_as_none(onnx_model: Path) -> None:
    with make_runner(onnx_model) as runner:
        stats = measure_latency(runner, images(1), **QUICK)
    assert stats.threads is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_runs": 0},
        {"warmup_runs": -1},
        {"warmup_seconds": -0.1},
        {"min_seconds": -1.0},
        {"min_seconds": float("nan")},
        {"max_seconds": 0.0},
        {"max_seconds": float("inf")},
        {"min_seconds": 2.0, "max_seconds": 1.0},
    ],
)
def test_measure_latency_rejects_bad_arguments(runner: Runner, kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        measure_latency(runner, images(1), **kwargs)  # type: ignore[arg-type]


def test_measure_latency_needs_active_runner_and_images(onnx_model: Path) -> None:
    inactive = make_runner(onnx_model)
    with pytest.raises(ValueError, match="not active"):
        measure_latency(inactive, images(1), **QUICK)
    with make_runner(onnx_model) as runner, pytest.raises(ValueError, match="at least one image"):
        measure_latency(runner, images(0), **QUICK)


def test_measure_latency_passes_on_runner_input_errors(runner: Runner) -> None:
    with pytest.raises(EdgekitError, match="float32"):
        measure_latency(runner, images(1).astype(np.float64), **QUICK)


def test_summarise_known_values() -> None:
    stats = summarise([i * 1_000_000 for i in range(1, 101)], batch_size=8, threads=2, total_s=1.0)
    assert stats.runs == 100
    assert stats.min_ms == 1.0 and stats.max_ms == 100.0
    assert stats.p50_ms == pytest.approx(50.5)
    assert stats.p90_ms == pytest.approx(90.1)
    assert stats.p99_ms == pytest.approx(99.01)
    assert stats.mean_ms == pytest.approx(50.5)
    assert stats.throughput_ips == pytest.approx(8 / 0.0505)
    single = summarise([2_000_000], batch_size=1, threads=None, total_s=0.002)
    assert single.std_ms == 0.0 and single.p50_ms == single.p99_ms == 2.0
    with pytest.raises(ValueError):
        summarise([], batch_size=1, threads=None, total_s=0.0)


# -- environment ---------------------------------------------------------------------------------
def test_capture_environment_keys_and_json() -> None:
    env = capture_environment()
    assert set(env) >= ENV_KEYS
    json.loads(json.dumps(env))
    assert env["cores_logical"] == os.cpu_count()
    assert isinstance(env["runtime_versions"], dict)
    assert {"tflite", "onnxruntime", "keras"} <= set(env["runtime_versions"])
    assert str(env["timestamp_utc"]).endswith("+00:00")


def test_capture_environment_without_proc_or_sys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "missing"
    monkeypatch.setattr(environment, "CPUINFO", missing / "cpuinfo")
    monkeypatch.setattr(environment, "CPUFREQ_DIR", missing / "cpufreq")
    monkeypatch.setattr(environment, "DEVICE_TREE_MODEL", missing / "model")
    env = capture_environment()
    assert env["cpu_governor"] is None and env["cpu_freq_cur_mhz"] is None
    json.dumps(env)


def test_arm_cpuinfo_and_cpufreq(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nBogoMIPS\t: 108.00\nCPU implementer\t: 0x41\nCPU part\t: 0xd08\n\n"
        "processor\t: 1\nCPU implementer\t: 0x41\nCPU part\t: 0xd08\n\n"
        "Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n"
    )
    freq = tmp_path / "cpufreq"
    freq.mkdir()
    (freq / "scaling_governor").write_text("ondemand\n")
    (freq / "scaling_cur_freq").write_text("1500000\n")
    (freq / "scaling_max_freq").write_text("1800000\n")
    (freq / "cpuinfo_max_freq").write_text("garbage\n")
    monkeypatch.setattr(environment, "CPUINFO", cpuinfo)
    monkeypatch.setattr(environment, "CPUFREQ_DIR", freq)
    env = capture_environment()
    assert env["cpu_model"] == "Raspberry Pi 4 Model B Rev 1.4 (Cortex-A72)"
    assert env["cpu_governor"] == "ondemand"
    assert env["cpu_freq_cur_mhz"] == 1500.0 and env["cpu_freq_max_mhz"] == 1800.0
    assert env["cpu_freq_hw_max_mhz"] is None


# -- harness / worker ----------------------------------------------------------------------------
def test_thread_counts() -> None:
    assert thread_counts(1) == [1]
    assert thread_counts(4) == [1, 4]
    default = thread_counts()
    assert default[0] == 1 and len(default) <= 2 and len(set(default)) == len(default)
    with pytest.raises(ValueError):
        thread_counts(0)


def test_worker_env_prepends_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    assert worker_env()["PYTHONPATH"].split(os.pathsep) == [str(REPO_ROOT), "/somewhere/else"]
    monkeypatch.delenv("PYTHONPATH")
    assert worker_env()["PYTHONPATH"] == str(REPO_ROOT)


def test_make_batch_tiles_cyclically() -> None:
    base = images(3)
    batch = make_batch(base, 7)
    assert batch.shape == (7, 28, 28, 1) and batch.flags.c_contiguous
    np.testing.assert_array_equal(batch[3:6], base)
    np.testing.assert_array_equal(make_batch(base, 2), base[:2])


def test_run_worker_end_to_end(
    model_path: Path, inputs_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another working directory: the worker must find the packages through PYTHONPATH.
    monkeypatch.chdir(tmp_path)
    out = run_worker(model_path, inputs_path, threads=1, batch_sizes=[1, 4], max_seconds=30.0, timeout_s=120, **QUICK)
    assert set(out) == WORKER_FIELDS
    assert out["model"] == str(model_path)
    assert out["runtime"] == {".onnx": "onnxruntime", ".tflite": "tflite"}[model_path.suffix]
    assert isinstance(out["backend"], str) and out["backend"]
    assert isinstance(out["runtime_version"], str) and out["runtime_version"]
    assert out["threads"] == 1
    assert out["activate_ms"] > 0 and out["first_inference_ms"] > 0
    assert out["load_ms"] == pytest.approx(out["activate_ms"] + out["first_inference_ms"])
    assert out["peak_rss_mb"] > 0
    assert [r["batch_size"] for r in out["results"]] == [1, 4]
    for result, batch_size in zip(out["results"], [1, 4], strict=True):
        assert result["threads"] == 1
        assert_consistent(result, batch_size=batch_size, min_runs=50)


def test_run_worker_keras_sets_threads_in_fresh_process(keras_files: tuple[Path, Path], inputs_path: Path) -> None:
    # TensorFlow's thread count is process-global: this only works because each worker is fresh.
    out = run_worker(keras_files[0], inputs_path, threads=1, batch_sizes=[1, 4], timeout_s=300, **QUICK)
    assert out["runtime"] == "keras" and out["threads"] == 1
    assert "tensorflow" in str(out["runtime_version"])
    for result, batch_size in zip(out["results"], [1, 4], strict=True):
        assert_consistent(result, batch_size=batch_size, min_runs=50)


def test_worker_prints_exactly_one_json_line(onnx_model: Path, inputs_path: Path) -> None:
    cmd = [sys.executable, "-m", "benchmarks.worker", "--model", str(onnx_model)]
    cmd += ["--inputs", str(inputs_path), "--min-runs", "20", "--min-seconds", "0"]
    cmd += ["--warmup-runs", "1", "--warmup-seconds", "0"]
    proc = subprocess.run(cmd, env=worker_env(), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    out = json.loads(line)
    assert out["threads"] is None
    assert [r["batch_size"] for r in out["results"]] == [1]


@pytest.mark.parametrize(
    "content",
    [
        np.random.default_rng(3).bytes(4096),
        # Carries the TFL3 identifier, so it reaches the interpreter's flatbuffer verifier.
        b"\x1c\x00\x00\x00TFL3" + np.random.default_rng(4).bytes(4096),
    ],
    ids=["random", "tfl3-header"],
)
def test_run_worker_corrupt_tflite(tmp_path: Path, inputs_path: Path, content: bytes) -> None:
    bad = tmp_path / "corrupt.tflite"
    bad.write_bytes(content)
    with pytest.raises(BenchmarkError) as info:
        run_worker(bad, inputs_path, threads=1, timeout_s=120, **QUICK)
    message = str(info.value)
    assert "corrupt.tflite" in message
    assert "Traceback" not in message and "\n" not in message


def test_run_worker_missing_inputs(onnx_model: Path, tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match="does not exist"):
        run_worker(onnx_model, tmp_path / "nope.npy", threads=1, timeout_s=120, **QUICK)


def test_run_worker_bad_arguments(onnx_model: Path, inputs_path: Path) -> None:
    with pytest.raises(ValueError):
        run_worker(onnx_model, inputs_path, threads=1, batch_sizes=[])
    with pytest.raises(ValueError):
        run_worker(onnx_model, inputs_path, threads=0)
    # Rejected by the worker's own argument parser: reported, not swallowed.
    with pytest.raises(BenchmarkError, match="max-seconds"):
        run_worker(onnx_model, inputs_path, threads=1, min_seconds=2.0, max_seconds=1.0, timeout_s=120)


# -- dependency isolation ------------------------------------------------------------------------
ISOLATION_SCRIPT = """
import json, sys
{prelude}
import benchmarks.latency, benchmarks.environment, benchmarks.harness, benchmarks.worker
env = benchmarks.environment.capture_environment()
print(json.dumps({{"tf": "tensorflow" in sys.modules, "keras": "keras" in sys.modules,
                  "versions": env["runtime_versions"]}}))
"""


def test_benchmarks_never_import_tensorflow() -> None:
    # Runtime versions come from package metadata, so even the tf.lite fallback is not imported.
    proc = subprocess.run(
        [sys.executable, "-c", ISOLATION_SCRIPT.format(prelude="")],
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["tf"] is False and out["keras"] is False
    assert out["versions"]["tflite"].startswith("ai_edge_litert")
