"""Fuzzing the loaders with hypothesis: random and mutated bytes must give edgekit's own errors only.

Seeds are real files: PNG/JPEG/GIF/BMP/TIFF/.npy images made here, and the .tflite/.onnx/.keras
files of the small real run. Mutations: flipped bytes (biased to the headers, where the structure
is), truncation, a chunk of the file copied over another place (splice), inserted bytes, a zeroed
range, and pure random bytes. A .keras file is also mutated *inside* its zip (a member's bytes
changed and the archive rewritten), so the fuzz gets past the zip CRC checks into Keras itself.

- Images go through `toolkit.inputs.photo.prepare` in this process (Pillow and numpy).
- Models go through `runtimes.registry.make_runner(path).activate()` and one `infer` (and
  `runtimes.keras_runner.load_keras_model` for .keras) in a long-lived child process: a native crash
  in LiteRT/ONNX Runtime/TensorFlow kills only the child, and the example fails naming the signal.

Only `runtimes.errors.EdgekitError` subclasses (or success) are accepted. Every test is
derandomized (the same examples on every run, so CI is reproducible) and bounded (≤ ~20 s each).
Set EDGEKIT_FUZZ_EXAMPLES to multiply the example counts for a longer local run.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import subprocess
import sys
import time
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from runtimes.errors import EdgekitError  # noqa: E402
from tests.conftest import REPO  # noqa: E402

SCALE = float(os.environ.get("EDGEKIT_FUZZ_EXAMPLES", "1"))
STATS: dict[str, dict[str, Any]] = {}


class Seeds(dict[str, bytes]):
    """Seed files by name (a short repr: hypothesis prints the test's arguments on failure)."""

    def __repr__(self) -> str:
        return f"<seeds {', '.join(self)}>"


def fuzz_settings(examples: int) -> Any:
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,  # one example may load a model (tens of ms to a second); the count bounds the time
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
        print_blob=True,
    )


# -- mutations -----------------------------------------------------------------------------------------
# Positions: half near the start (headers, flatbuffer root tables, protobuf fields), some near the end
# (zip central directory, TFLite metadata), the rest anywhere.
position = st.one_of(
    st.integers(0, 511).map(lambda p: ("head", p)),
    st.integers(0, 511).map(lambda p: ("tail", p)),
    st.integers(0, 2**31).map(lambda p: ("any", p)),
)
mutation = st.one_of(
    st.tuples(st.just("flip"), st.lists(st.tuples(position, st.integers(1, 255)), min_size=1, max_size=12)),
    st.tuples(st.just("truncate"), position),
    st.tuples(st.just("splice"), position, position, st.integers(1, 4096)),
    st.tuples(st.just("insert"), position, st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("zero"), position, st.integers(1, 4096)),
    st.tuples(st.just("random"), st.binary(min_size=0, max_size=2048)),
)


def _at(pos: tuple[str, int], size: int) -> int:
    where, p = pos
    if size == 0:
        return 0
    if where == "head":
        return min(p, size - 1)
    if where == "tail":
        return max(0, size - 1 - p)
    return p % size


def mutate(data: bytes, ops: list[Any]) -> bytes:
    buf = bytearray(data)
    for op in ops:
        kind = op[0]
        if kind == "random":
            buf = bytearray(op[1])
        elif kind == "flip":
            for pos, xor in op[1]:
                if buf:
                    buf[_at(pos, len(buf))] ^= xor
        elif kind == "truncate":
            del buf[_at(op[1], len(buf)) :]
        elif kind == "splice":
            src, dst, n = _at(op[1], len(buf)), _at(op[2], len(buf)), op[3]
            chunk = bytes(buf[src : src + n])
            buf[dst : dst + len(chunk)] = chunk
        elif kind == "insert":
            at = _at(op[1], len(buf))
            buf[at:at] = op[2]
        elif kind == "zero":
            at = _at(op[1], len(buf))
            buf[at : at + op[2]] = bytes(len(buf[at : at + op[2]]))
    return bytes(buf)


mutations = st.lists(mutation, min_size=1, max_size=3)


def _record(name: str, outcome: str, started: float) -> None:
    s = STATS.setdefault(name, {"examples": 0, "seconds": 0.0, "outcomes": {}})
    s["examples"] += 1
    s["outcomes"][outcome] = s["outcomes"].get(outcome, 0) + 1
    s["seconds"] += time.perf_counter() - started


@pytest.fixture(scope="module", autouse=True)
def _print_stats(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not STATS:
        return
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter.write_line("")
        for name, s in STATS.items():
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(s["outcomes"].items()))
            reporter.write_line(f"fuzz {name}: {s['examples']} examples in {s['seconds']:.1f} s ({outcomes})")


# -- images (in process) -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def image_seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    from PIL import Image

    digit = np.zeros((48, 36), np.uint8)
    digit[8:40, 14:22] = 255
    rgb = np.dstack([255 - digit, 255 - digit, np.full_like(digit, 200)])
    out = Seeds()
    for name, im, fmt in (
        ("grey.png", Image.fromarray(digit), "PNG"),
        ("rgba.png", Image.fromarray(digit).convert("RGBA"), "PNG"),
        ("grey16.png", Image.fromarray(digit.astype(np.uint16) * 257), "PNG"),
        ("photo.jpg", Image.fromarray(rgb), "JPEG"),
        ("palette.gif", Image.fromarray(digit).convert("P"), "GIF"),
        ("grey.bmp", Image.fromarray(digit), "BMP"),
        ("grey.tif", Image.fromarray(digit), "TIFF"),
    ):
        buf = io.BytesIO()
        im.save(buf, format=fmt)
        out[name] = buf.getvalue()
    for name, arr in (("grey.npy", digit), ("batch.npy", np.stack([digit, digit]).astype(np.float32) / 255)):
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        out[name] = buf.getvalue()
    return out


@fuzz_settings(3000)
@given(seed=st.sampled_from(range(9)), ops=mutations, preprocess=st.booleans())
def test_image_loader_fuzz(
    image_seeds: dict[str, bytes], tmp_path: Path, seed: int, ops: list[Any], preprocess: bool
) -> None:
    from toolkit.inputs.photo import prepare

    name = sorted(image_seeds)[seed]
    path = tmp_path / f"fuzz-{name}"
    path.write_bytes(mutate(image_seeds[name], ops))
    started = time.perf_counter()
    # A warning would be a second stderr line in the CLI, so none may escape either.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            prepared = prepare(path, preprocess=preprocess)
        except EdgekitError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc), str(exc)
            prepared = []
    assert not caught, [str(w.message) for w in caught]
    _record("images (toolkit.inputs.photo.prepare)", "ok" if prepared else "refused", started)
    for p in prepared:
        assert p.pixels.shape == (28, 28) and p.pixels.dtype == np.float32
        assert np.isfinite(p.pixels).all() and p.pixels.min() >= 0 and p.pixels.max() <= 1


# -- models (in a child process, so a native crash cannot take pytest down) --------------------------------
WORKER = r"""
import json, os, sys
# Answers go to a private copy of stdout; whatever the loaders print to stdout (Python or native) is
# collected per example: in the CLI it would corrupt `predict --json`.
import tempfile
answers = os.fdopen(os.dup(1), "w", buffering=1)
noise = tempfile.TemporaryFile()
os.dup2(noise.fileno(), 1)
sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
import numpy as np
from runtimes.errors import EdgekitError
from runtimes.registry import make_runner
from runtimes.keras_runner import load_keras_model

batch = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
print(json.dumps({"ready": True}), file=answers, flush=True)
for line in sys.stdin:
    path = line.strip()
    noise.seek(0)
    noise.truncate()
    try:
        if path.endswith(".keras"):
            load_keras_model(path)
        runner = make_runner(path, num_threads=1)
        runner.activate()
        try:
            probs = runner.infer(batch)
            assert probs.shape == (2, 10) and probs.dtype == np.float32, (probs.shape, probs.dtype)
        finally:
            runner.deactivate()
        result = {"outcome": "ok"}
    except EdgekitError as exc:
        result = {"outcome": "edgekit", "type": type(exc).__name__, "message": str(exc)}
    except BaseException as exc:
        import traceback
        result = {"outcome": "other", "type": type(exc).__name__, "message": str(exc)[:500],
                  "traceback": traceback.format_exc()[-3000:]}
    sys.stdout.flush()
    noise.seek(0)
    printed = noise.read().decode(errors="replace").strip()
    if printed:
        result["stdout"] = printed[:500]
    print(json.dumps(result), file=answers, flush=True)
"""


class ModelWorker:
    """A child Python that loads and runs one model per request; restarted after a crash."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
        proc = subprocess.Popen(
            [sys.executable, "-c", WORKER],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(self.log, "ab"),  # noqa: SIM115 - the child owns it for its life
            text=True,
            bufsize=1,
        )
        first = self._read(proc, 120)
        assert first == {"ready": True}, first
        return proc

    @staticmethod
    def _read(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any] | None:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = proc.stdout.readline()
        return json.loads(line) if line else None

    def run(self, path: Path, timeout: float = 60) -> dict[str, Any]:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{path}\n")
        self.proc.stdin.flush()
        result = self._read(self.proc, timeout)
        if result is None:  # crashed or hung
            if self.proc.poll() is None:
                self.proc.kill()
            code = self.proc.wait()
            self.proc = None
            return {"outcome": "crash", "returncode": code}
        return result

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelWorker]:
    w = ModelWorker(tmp_path_factory.mktemp("fuzz-worker") / "stderr.log")
    yield w
    w.close()


@pytest.fixture(scope="module")
def model_seeds(small_run: Path) -> dict[str, bytes]:
    exports = small_run / "exports"
    return Seeds(
        {
            "int8.tflite": (exports / "model_int8.tflite").read_bytes(),
            "fp16.tflite": (exports / "model_fp16.tflite").read_bytes(),
            "int8.onnx": (exports / "model_int8.onnx").read_bytes(),
            "fp32.onnx": (exports / "model_fp32.onnx").read_bytes(),
            "model.keras": (small_run / "model.keras").read_bytes(),
        }
    )


def mutate_zip_member(data: bytes, member: int, ops: list[Any]) -> bytes:
    """Mutate one member of a zip archive and write a valid archive again (CRCs recomputed)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    infos = src.infolist()
    target = infos[member % len(infos)].filename
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in infos:
            body = src.read(info.filename)
            dst.writestr(info, mutate(body, ops) if info.filename == target else body)
    return out.getvalue()


def check_model(worker: ModelWorker, path: Path, name: str, started: float) -> None:
    result = worker.run(path)
    _record(name, result["outcome"], started)
    assert result["outcome"] in ("ok", "edgekit"), f"{path.name}: {result}"
    assert "stdout" not in result, f"{path.name} printed to stdout: {result}"
    if result["outcome"] == "edgekit":
        assert "\n" not in result["message"], result["message"]


def _fuzz_model(
    worker: ModelWorker, seeds: dict[str, bytes], tmp_path: Path, seed: str, ops: list[Any], label: str
) -> None:
    path = tmp_path / f"fuzz-{seed}"
    path.write_bytes(mutate(seeds[seed], ops))
    check_model(worker, path, label, time.perf_counter())


@fuzz_settings(1500)
@given(seed=st.sampled_from(["int8.tflite", "fp16.tflite"]), ops=mutations)
def test_tflite_loader_fuzz(
    worker: ModelWorker, model_seeds: dict[str, bytes], tmp_path: Path, seed: str, ops: list[Any]
) -> None:
    _fuzz_model(worker, model_seeds, tmp_path, seed, ops, "tflite (make_runner + infer)")


@fuzz_settings(1000)
@given(seed=st.sampled_from(["int8.onnx", "fp32.onnx"]), ops=mutations)
def test_onnx_loader_fuzz(
    worker: ModelWorker, model_seeds: dict[str, bytes], tmp_path: Path, seed: str, ops: list[Any]
) -> None:
    _fuzz_model(worker, model_seeds, tmp_path, seed, ops, "onnx (make_runner + infer)")


@fuzz_settings(100)
@given(inside=st.booleans(), member=st.integers(0, 10), ops=mutations)
def test_keras_loader_fuzz(
    worker: ModelWorker, model_seeds: dict[str, bytes], tmp_path: Path, inside: bool, member: int, ops: list[Any]
) -> None:
    data = model_seeds["model.keras"]
    path = tmp_path / "fuzz-model.keras"
    path.write_bytes(mutate_zip_member(data, member, ops) if inside else mutate(data, ops))
    check_model(worker, path, "keras (load_keras_model + make_runner + infer)", time.perf_counter())
