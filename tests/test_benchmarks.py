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

from benchmarks import environment, harness_check
from benchmarks.environment import capture_environment, decode_throttled
from benchmarks.errors import BenchmarkError
from benchmarks.flops import flops_per_image
from benchmarks.harness import REPO_ROOT, module_command, run_worker, thread_counts, worker_command, worker_env
from benchmarks.latency import LatencyStats, measure_latency, summarise
from benchmarks.peak import achieved, blas_env, blas_env_note, measure_peak, measure_peak_details
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
    "options",
    "delegated",
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
    "temperatures_c",
    "throttled",
    "throttle_flags",
    "openblas_env",
    "blas_note",
}
# The reference CNN: 2 x (conv 24*24*32*25 + dense 4608*128 + dense 128*10) multiply-accumulates.
REFERENCE_FLOPS = 2 * (24 * 24 * 32 * 25 + 4608 * 128 + 128 * 10)
# The tiny test models: one 784 x 10 matrix multiply.
TINY_FLOPS = 2 * 784 * 10


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
    assert isinstance(s["p95_ms"], float) and p90 <= s["p95_ms"] <= p99
    quantiles = s["quantiles_ms"]
    assert isinstance(quantiles, list) and len(quantiles) == 101
    assert quantiles == sorted(quantiles) and quantiles[0] == mn and quantiles[-1] == mx
    low, high = s["p90_ci_low_ms"], s["p90_ci_high_ms"]
    if s["runs"] >= 36:  # fewer runs cannot bound p90 from above at 95 %
        assert isinstance(low, float) and isinstance(high, float) and mn <= low <= p90 <= high <= mx
    assert isinstance(s["noisy"], bool)
    assert (s["noise"] is None) != s["noisy"] and (s["noise"] is None or isinstance(s["noise"], str))


# -- measure_latency -----------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [1, 4])
def test_measure_latency_real_runners(model_path: Path, batch_size: int) -> None:
    with make_runner(model_path, num_threads=1) as runner:
        stats = measure_latency(runner, images(batch_size), **QUICK)
    assert_consistent(stats, batch_size=batch_size, min_runs=50)
    assert stats.threads == 1
    d = stats.to_dict()
    assert set(d) == {f.name for f in fields(LatencyStats)}
    assert isinstance(d["io_p50_ms"], float) and d["io_p50_ms"] >= 0
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


def test_temperatures_and_pi_throttling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    thermal = tmp_path / "thermal"
    for zone, kind, temp in (("thermal_zone0", "cpu-thermal", "51625"), ("thermal_zone1", "cpu-thermal", "49000")):
        (thermal / zone).mkdir(parents=True)
        (thermal / zone / "type").write_text(kind + "\n")
        (thermal / zone / "temp").write_text(temp + "\n")
    (thermal / "thermal_zone2").mkdir()  # a zone whose temp cannot be read is skipped
    # A stand-in for the Raspberry Pi firmware tool: under-voltage and throttling, now and since boot.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "vcgencmd"
    tool.write_text("#!/bin/sh\necho throttled=0x50005\n")
    tool.chmod(0o755)
    monkeypatch.setattr(environment, "THERMAL_DIR", thermal)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    env = capture_environment()
    assert env["temperatures_c"] == {"cpu-thermal": 51.625, "cpu-thermal/thermal_zone1": 49.0}
    assert env["throttled"] is True and env["throttled_raw"] == "0x50005"
    assert env["throttle_flags"] == [
        "under-voltage now",
        "throttled now",
        "under-voltage since boot",
        "throttled since boot",
    ]
    json.dumps(env)
    # Only "since boot" bits: not throttled now, but the history is kept.
    tool.write_text("#!/bin/sh\necho throttled=0x80000\n")
    env = capture_environment()
    assert env["throttled"] is False and env["throttle_flags"] == ["soft temperature limit since boot"]
    # A broken tool gives "unknown", never an exception.
    tool.write_text("#!/bin/sh\necho 'VCHI initialization failed' >&2\nexit 255\n")
    env = capture_environment()
    assert env["throttled"] is None and env["throttle_flags"] == []


def test_no_thermal_zones_or_vcgencmd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(environment, "THERMAL_DIR", tmp_path / "missing")
    monkeypatch.setattr(environment, "VCGENCMD", "no-such-vcgencmd-tool")
    env = capture_environment()
    assert env["temperatures_c"] == {} and env["throttled"] is None and env["throttle_flags"] == []


def test_decode_throttled_bits() -> None:
    assert decode_throttled(0) == []
    assert decode_throttled(0xF000F) == [
        "under-voltage now",
        "arm frequency capped now",
        "throttled now",
        "soft temperature limit now",
        "under-voltage since boot",
        "arm frequency capped since boot",
        "throttled since boot",
        "soft temperature limit since boot",
    ]
    assert decode_throttled(1 << 5) == ["bit 5"]


@pytest.fixture
def no_machine_blas_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    # CI machines set their own (OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE); these tests set exactly what they check.
    for name in [n for n in os.environ if n.startswith("OPENBLAS_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def test_blas_env_is_recorded_not_changed(no_machine_blas_env: pytest.MonkeyPatch) -> None:
    monkeypatch = no_machine_blas_env
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    assert blas_env() == {"OPENBLAS_CORETYPE": "Haswell"}  # thread counts are reported elsewhere
    note = blas_env_note()
    assert note is not None and "OPENBLAS_CORETYPE=Haswell" in note and "understated" in note
    env = capture_environment()
    assert env["openblas_env"] == {"OPENBLAS_CORETYPE": "Haswell"} and env["blas_note"] == note
    assert blas_env_note({"OPENBLAS_VERBOSE": "2"}) is None
    assert os.environ["OPENBLAS_CORETYPE"] == "Haswell"


# -- FLOPs and peak ------------------------------------------------------------------------------
def test_flops_of_the_reference_cnn_in_every_format(small_run: Path) -> None:
    manifest = json.loads((small_run / "manifest.json").read_text())
    counted = {a["name"]: flops_per_image(small_run / a["path"]) for a in manifest["artifacts"]}
    expected = {"tflite-fp32", "tflite-fp16", "tflite-int8-dynamic", "tflite-int8", "onnx-fp32", "onnx-int8"}
    assert expected <= set(counted)
    assert {name: counted[name] for name in expected} == dict.fromkeys(expected, REFERENCE_FLOPS)
    assert REFERENCE_FLOPS == 2_103_808
    assert counted["keras-fp32"] is None  # would need TensorFlow


def test_flops_of_tiny_models(model_path: Path) -> None:
    assert flops_per_image(model_path) == TINY_FLOPS


def test_onnx_flops_without_the_onnx_package(onnx_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    assert flops_per_image(onnx_model) is None


def test_flops_of_a_corrupt_model(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    with pytest.raises(EdgekitError):
        flops_per_image(bad)


def test_achieved_gflops() -> None:
    assert achieved(REFERENCE_FLOPS, 32, 0.5) == pytest.approx(134.64371)
    with pytest.raises(ValueError):
        achieved(REFERENCE_FLOPS, 1, 0.0)


def test_measure_peak_one_process_per_thread_count(no_machine_blas_env: pytest.MonkeyPatch) -> None:
    monkeypatch = no_machine_blas_env
    # An OPENBLAS_ variable OpenBLAS ignores: it must be passed through and recorded as found.
    monkeypatch.setenv("OPENBLAS_EDGEKIT_TEST", "1")
    details = measure_peak_details([1, 2], seconds=0.05, size=128)
    assert set(details) == {1, 2}
    for threads, d in details.items():
        assert d["threads"] == threads and d["size"] == 128 and d["runs"] >= 3
        assert d["gflops"] >= d["gflops_median"] > 0
        assert d["openblas_env"] == {"OPENBLAS_EDGEKIT_TEST": "1"}
    peak = measure_peak([1], seconds=0.05)
    assert list(peak) == [1] and isinstance(peak[1], float) and peak[1] > 0
    with pytest.raises(ValueError):
        measure_peak([0])


def test_peak_cli_prints_one_json_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.peak", "--threads", "1", "--seconds", "0.05", "--size", "64"],
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    out = json.loads(line)
    assert out["threads"] == 1 and out["dtype"] == "float32" and out["gflops"] > 0


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


@pytest.fixture
def shadowing_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding a user's own `benchmarks/` and `runtimes/` packages that must never load."""
    for package in ("benchmarks", "runtimes"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text(f"raise ImportError('the user\\'s own {package} ran')\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_run_worker_ignores_packages_in_the_cwd(onnx_model: Path, inputs_path: Path, shadowing_cwd: Path) -> None:
    # Bug: `python -m benchmarks.worker` put the cwd first on sys.path, so these shadowed ours.
    naive = [sys.executable, "-m", "benchmarks.worker", "--model", str(onnx_model), "--inputs", str(inputs_path)]
    proc = subprocess.run(naive, env=worker_env(), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0 and "own benchmarks ran" in proc.stderr  # the bug, reproduced
    out = run_worker(onnx_model, inputs_path, threads=1, timeout_s=120, **QUICK)
    assert out["runtime"] == "onnxruntime"
    assert measure_peak([1], seconds=0.05)[1] > 0  # the peak child is started the same way


@pytest.mark.parametrize("safe_path_flag", [True, False], ids=["-P", "3.10-bootstrap"])
def test_worker_command_variants_ignore_the_cwd(
    onnx_model: Path, inputs_path: Path, shadowing_cwd: Path, safe_path_flag: bool
) -> None:
    # Python 3.11+ uses -P; 3.10 has no -P and gets a -c bootstrap. Both are run here, on this interpreter.
    cmd = worker_command(
        onnx_model,
        inputs_path,
        threads=1,
        batch_sizes=[1],
        warmup_runs=1,
        warmup_seconds=0.0,
        min_runs=5,
        min_seconds=0.0,
        max_seconds=None,
    )
    prefix = module_command("benchmarks.worker", safe_path_flag=safe_path_flag)
    cmd = prefix + cmd[len(module_command("benchmarks.worker")) :]
    proc = subprocess.run(cmd, env=worker_env(), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["results"][0]["runs"] >= 5
    # Arguments still reach the worker's own parser (its prog name is kept).
    bad = subprocess.run([*prefix, "--model"], env=worker_env(), capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "python -m benchmarks.worker" in bad.stderr


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


def test_worker_options_default(model_path: Path, inputs_path: Path) -> None:
    out = run_worker(model_path, inputs_path, threads=1, timeout_s=120, **QUICK)
    if model_path.suffix == ".tflite":
        assert out["options"] == {"xnnpack": True, "graph_optimization": None, "performance_hint": None}
        assert out["delegated"] is True
    else:
        assert out["options"] == {"xnnpack": None, "graph_optimization": "all", "performance_hint": None}
        assert out["delegated"] is None


def test_worker_without_xnnpack(tflite_model: Path, inputs_path: Path) -> None:
    out = run_worker(tflite_model, inputs_path, threads=1, xnnpack=False, timeout_s=120, **QUICK)
    assert out["options"] == {"xnnpack": False, "graph_optimization": None, "performance_hint": None}
    assert out["delegated"] is False
    assert_consistent(out["results"][0], batch_size=1, min_runs=50)


@pytest.mark.parametrize("level", ["disable", "basic", "extended", "all"])
def test_worker_graph_optimization_levels(onnx_model: Path, inputs_path: Path, level: str) -> None:
    out = run_worker(onnx_model, inputs_path, threads=1, graph_optimization=level, timeout_s=120, **QUICK)
    assert out["options"] == {"xnnpack": None, "graph_optimization": level, "performance_hint": None}
    assert_consistent(out["results"][0], batch_size=1, min_runs=50)


def test_sweep_options_for_the_wrong_runtime_are_refused(
    onnx_model: Path, tflite_model: Path, inputs_path: Path
) -> None:
    for model, kwargs in ((onnx_model, {"xnnpack": False}), (tflite_model, {"graph_optimization": "basic"})):
        with pytest.raises(BenchmarkError) as info:
            run_worker(model, inputs_path, threads=1, timeout_s=120, **kwargs, **QUICK)  # type: ignore[arg-type]
        assert model.name in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ValueError, match="graph_optimization"):
        run_worker(onnx_model, inputs_path, threads=1, graph_optimization="maximum")
    # The worker refuses them too, as one JSON error line (exit 1), for callers that skip run_worker.
    for model, flag in ((onnx_model, ["--no-xnnpack"]), (tflite_model, ["--graph-optimization", "basic"])):
        cmd = [sys.executable, "-m", "benchmarks.worker", "--model", str(model), "--inputs", str(inputs_path), *flag]
        proc = subprocess.run(cmd, env=worker_env(), capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 1
        (line,) = proc.stdout.splitlines()
        assert "only" in json.loads(line)["error"]


# -- harness check -------------------------------------------------------------------------------
def test_harness_check_writes_json_and_table(
    onnx_model: Path, tflite_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--tflite", str(tflite_model), "--onnx", str(onnx_model), "--out", str(tmp_path)]
    argv += ["--rounds", "2", "--min-runs", "50", "--seconds", "0", "--machine", "test-box"]
    code = harness_check.main(argv)
    assert code in (harness_check.EXIT_OK, harness_check.EXIT_FAILED)  # a speed verdict: not asserted
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and all(f.startswith("harness-check-") and "-test-box." in f for f in files)
    result = json.loads((tmp_path / files[0]).read_text())
    assert result["pass"] == (code == harness_check.EXIT_OK)
    assert result["tolerance"] == 0.05 and set(result["environment"]) >= ENV_KEYS
    assert [r["runtime"] for r in result["results"]] == ["tflite", "onnxruntime"]
    for r in result["results"]:
        assert r["harness_p50_ms"] > 0 and r["minimal_p50_ms"] > 0
        assert [row["order"] for row in r["rounds"]] == ["harness-first", "minimal-first"]
        assert r["pass"] == (abs(r["diff"]) <= 0.05)
    table = (tmp_path / files[1]).read_text()
    assert "harness p50" in table and "tflite" in table and "onnxruntime" in table
    assert table in capsys.readouterr().out


def test_harness_check_takes_a_runs_exports_int8_included(
    small_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--exports", str(small_run / "exports"), "--out", str(tmp_path), "--rounds", "1", "--min-runs", "5"]
    code = harness_check.main([*argv, "--seconds", "0", "--machine", "test-box"])
    assert code in (harness_check.EXIT_OK, harness_check.EXIT_FAILED)
    result = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert [r["artifact"] for r in result["results"]] == ["tflite-fp32", "tflite-int8", "onnx-fp32"]
    assert [r["input_dtype"] for r in result["results"]] == ["float32", "int8", "float32"]
    for r in result["results"]:
        assert r["ratio"] == pytest.approx(1 + r["diff"]) and r["io_p50_ms"] > 0
    out = capsys.readouterr().out
    assert "tflite-int8" in out and "ratio" in out and "overall:" in out
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit):
        harness_check.main(["--exports", str(empty), "--out", str(tmp_path)])


@pytest.mark.parametrize(
    ("env", "label"),
    [
        ({"machine": "x86_64", "cpu_model": "AMD EPYC", "cores_available": 2}, "x86_64-epyc-2cpu"),
        (
            {"machine": "x86_64", "cpu_model": "AMD EPYC 7B13 64-Core Processor", "cores_available": 2},
            "x86_64-epyc-7b13-2cpu",
        ),
        (
            {"machine": "x86_64", "cpu_model": "Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz", "cores_logical": 8},
            "x86_64-i7-8650u-8cpu",
        ),
        (
            {"machine": "aarch64", "cpu_model": "Raspberry Pi 4 Model B Rev 1.4 (Cortex-A72)", "cores_available": 4},
            "aarch64-cortex-a72-4cpu",
        ),
        ({"machine": "x86_64", "cpu_model": "Intel(R) Xeon(R) Processor", "cores_available": 2}, "x86_64-xeon-2cpu"),
        ({}, "unknown"),
    ],
)
def test_machine_label(env: dict[str, object], label: str) -> None:
    assert harness_check.machine_label(env) == label


# -- dependency isolation ------------------------------------------------------------------------
ISOLATION_SCRIPT = """
import json, sys
{prelude}
import benchmarks.latency, benchmarks.environment, benchmarks.harness, benchmarks.worker
import benchmarks.stats, benchmarks.flops, benchmarks.peak, benchmarks.harness_check
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


def test_worker_peak_rss_is_its_own_not_the_parents(onnx_model: Path, inputs_path: Path) -> None:
    # ru_maxrss survives fork+exec; a parent holding 800 MB must not show up in the worker's figure.
    ballast = np.ones(200 * 1024 * 1024, dtype=np.float32)
    out = run_worker(onnx_model, inputs_path, threads=1, batch_sizes=[1], warmup_runs=1, min_runs=5, min_seconds=0.0)
    assert ballast.sum() > 0
    assert 10 < out["peak_rss_mb"] < 400
