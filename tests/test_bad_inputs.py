"""The bad-input matrix: every case runs the real `edgekit` CLI in a subprocess, as a user would.

Each case states the exit code (1: a user error, 2: a usage error caught by Typer, 0: an input that
looks odd but is supported) and, for exit 1, fragments of the one `error:` line (the file or option,
and what was expected). After every case nothing new may exist under the case's folders except the
run lock: no file under a final name, and no `.partial` temporary.

Simulated conditions (tests run as root, where chmod 0o500 does not stop writes):
- an unwritable output location is a path *under a regular file* (`--out some_file/sub`), which fails
  with ENOTDIR for root too;
- a full disk is `RLIMIT_FSIZE` set in the child (SIGXFSZ ignored), so writes past the limit fail with
  EFBIG the way ENOSPC would.

At the end of the module a table (case → exit code → stderr line) is printed to the terminal.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import REPO

Args = Callable[["Ctx"], list[str]]
RESULTS: list[tuple[str, int, str]] = []


# -- assets shared by the cases (read-only; cases that damage something work on copies) -----------------
def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width×height (one small IDAT): a decompression bomb by its header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\0" * 1000))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


def tiny_onnx(path: Path, side: int, classes: int) -> Path:
    """A real ONNX classifier [N, side, side, 1] -> [N, classes] (Reshape, MatMul, Softmax)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.full((side * side, classes), 1e-3, np.float32), "w")
    shape = numpy_helper.from_array(np.array([-1, side * side], np.int64), "shape")
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["x", "shape"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", side, side, 1])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", classes])],
        initializer=[weights, shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _idx(arr: np.ndarray, magic: int) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape) + arr.tobytes()


@pytest.fixture(scope="module")
def assets(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    root = tmp_path_factory.mktemp("assets")
    exports = small_run / "exports"
    # images
    digit = np.zeros((60, 40), np.uint8)
    digit[10:50, 15:25] = 255
    Image.fromarray(digit).save(root / "digit.png")
    Image.fromarray(255 - digit).convert("CMYK").save(root / "cmyk.jpg")
    Image.fromarray(digit.astype(np.uint16) * 257).save(root / "grey16.png")
    Image.fromarray(digit).convert("P").save(root / "palette.png")
    Image.fromarray(digit).convert("RGBA").save(root / "rgba.png")
    Image.fromarray(digit).convert("1").save(root / "bilevel.png")
    Image.fromarray(digit.astype(np.float32) * 1e6, mode="F").save(root / "float_huge.tif")
    Image.fromarray(digit.astype(np.int32) - 100, mode="I").save(root / "negative.tif")
    Image.fromarray(np.zeros((60, 40), np.uint8)).save(root / "blank.png")
    Image.fromarray(digit).save(root / "whole.jpg")
    big = np.zeros((9000, 9000), np.uint8)
    big[3000:6000, 4000:5000] = 255
    Image.fromarray(big).save(root / "big9000.png")
    (root / "text.png").write_bytes(b"this is not a picture\n" * 20)
    (root / "zero.png").write_bytes(b"")
    (root / "bomb.png").write_bytes(_png_header_only(100_000, 100_000))
    png = (root / "digit.png").read_bytes()
    (root / "cut.png").write_bytes(png[: len(png) // 2])
    jpg = (root / "whole.jpg").read_bytes()
    (root / "cut.jpg").write_bytes(jpg[: len(jpg) // 2])
    np.save(root / "objects.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    (root / "folder.png").mkdir()
    # models
    rng = np.random.default_rng(6)
    for suffix, src in (
        (".tflite", exports / "model_fp32.tflite"),
        (".onnx", exports / "model_fp32.onnx"),
        (".keras", small_run / "model.keras"),
    ):
        (root / f"empty{suffix}").write_bytes(b"")
        (root / f"cut{suffix}").write_bytes(src.read_bytes()[: src.stat().st_size // 2])
        (root / f"random{suffix}").write_bytes(rng.bytes(20_000))
    shutil.copyfile(exports / "model_fp32.onnx", root / "onnx_named.tflite")
    shutil.copyfile(exports / "model_fp32.tflite", root / "tflite_named.onnx")
    tiny_onnx(root / "input32.onnx", 32, 10)
    tiny_onnx(root / "output5.onnx", 28, 5)
    (root / "model.pt").write_bytes(b"torch")
    # data
    from toolkit.data.mnist import load_mnist

    ref = load_mnist()
    small = {k: np.zeros((10, 32, 32) if k.startswith("x") else (10,), np.uint8) for k in ref_keys()}
    np.savez(root / "wrong_shape.npz", **small)
    x_train = ref.x_train.copy()
    x_train[0, 0, 0] ^= 1
    np.savez(root / "altered.npz", x_train=x_train, y_train=ref.y_train, x_test=ref.x_test, y_test=ref.y_test)
    (root / "notzip.npz").write_bytes(b"not a zip")
    idx = root / "idx"
    idx.mkdir()
    (idx / "train-images-idx3-ubyte").write_bytes(_idx(ref.x_train, 0x803))
    (idx / "train-labels-idx1-ubyte").write_bytes(_idx(ref.y_train, 0x801))
    (idx / "t10k-images-idx3-ubyte").write_bytes(_idx(ref.x_test, 0x803))  # t10k-labels is missing
    (root / "baseline.json").write_text('{"results": []}\n')
    # a bundle (tflite-int8 only: no TensorFlow needed) to damage in the verify cases
    from toolkit.bundles.build import build_bundle

    build_bundle(small_run, root / "bundle", artifact_names=["tflite-int8"], golden=16)
    return root


def ref_keys() -> tuple[str, ...]:
    from toolkit.data.mnist import KEYS

    return KEYS


# -- one case ------------------------------------------------------------------------------------------
@dataclass
class Ctx:
    tmp: Path
    assets: Path
    request: pytest.FixtureRequest
    _run: Path | None = field(default=None)

    @property
    def run(self) -> Path:
        """A private copy of the small real run (made on first use)."""
        if self._run is None:
            self._run = self.request.getfixturevalue("run_copy")
        return self._run

    def a(self, name: str) -> str:
        return str(self.assets / name)

    def export(self, name: str) -> Path:
        return self.run / "exports" / name

    def rehash(self) -> None:
        """Make manifest.json agree with the (damaged) files, so the loaders themselves are tested."""
        from runtimes.files import sha256_file

        path = self.run / "manifest.json"
        manifest = json.loads(path.read_text())
        for entry in manifest["artifacts"]:
            entry["sha256"] = sha256_file(self.run / entry["path"])
        path.write_text(json.dumps(manifest))

    def bundle(self) -> Path:
        dest = self.tmp / "bundle"
        shutil.copytree(self.assets / "bundle", dest)
        return dest


@dataclass(frozen=True)
class Case:
    args: Args
    code: int
    says: tuple[str, ...] = ()
    fsize: int | None = None  # RLIMIT_FSIZE for the child: a simulated full disk
    writes: tuple[str, ...] = ()  # files a successful case may create (by name)


def C(case_id: str, args: Args, code: int, *says: str, fsize: int | None = None, writes: tuple[str, ...] = ()) -> Any:
    return pytest.param(Case(args, code, says, fsize, writes), id=case_id)


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "missing":
        path.unlink()
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 3])
    elif how == "random":
        path.write_bytes(np.random.default_rng(3).bytes(len(data)))
    elif how == "flip":
        path.write_bytes(data[:5000] + bytes([data[5000] ^ 0xFF]) + data[5001:])
    else:
        raise AssertionError(how)


def run_damaged(rel: str, how: str, *command: str, rehash: bool = False) -> Args:
    """Damage `rel` in a private run copy, optionally re-hash the manifest, then run the command."""

    def build(ctx: Ctx) -> list[str]:
        damage(ctx.run / rel, how)
        if rehash:
            ctx.rehash()
        return [command[0], str(ctx.run), *command[1:]]

    return build


def replaced(rel: str, asset: str, *command: str) -> Args:
    def build(ctx: Ctx) -> list[str]:
        shutil.copyfile(ctx.assets / asset, ctx.run / rel)
        ctx.rehash()
        return [command[0], str(ctx.run), *command[1:]]

    return build


def predict_model(asset: str) -> Args:
    return lambda ctx: ["predict", ctx.a(asset), ctx.a("digit.png")]


def predict_image(asset: str, *extra: str) -> Args:
    return lambda ctx: [
        "predict",
        str(ctx.request.getfixturevalue("small_run") / "exports" / "model_fp32.tflite"),
        ctx.a(asset),
        *extra,
    ]


def _file_in_the_way(ctx: Ctx) -> Path:
    blocker = ctx.tmp / "a_file"
    blocker.write_text("not a directory\n")
    return blocker


def _bundle_tampered(ctx: Ctx) -> list[str]:
    dest = ctx.bundle()
    damage(dest / "exports" / "model_int8.tflite", "flip")
    return ["verify", str(dest)]


def _bundle_expected_missing(ctx: Ctx) -> list[str]:
    dest = ctx.bundle()
    (dest / "expected" / "tflite-int8.npy").unlink()
    return ["verify", str(dest)]


def _bundle_archive_garbage(ctx: Ctx) -> list[str]:
    bad = ctx.tmp / "bundle.tar.gz"
    bad.write_bytes(b"garbage, not gzip")
    return ["verify", str(bad)]


QUICK_BENCH = ("--quick", "--no-peak", "-b", "1", "-t", "1")
PARITY_FAST = ("--limit", "50")

CASES = [
    # -- a model given directly to predict ---------------------------------------------------------
    C("predict-tflite-missing", predict_model("absent.tflite"), 1, "absent.tflite", "does not exist"),
    C("predict-tflite-empty", predict_model("empty.tflite"), 1, "empty.tflite", "empty (0 bytes)"),
    C("predict-tflite-truncated", predict_model("cut.tflite"), 1, "cut.tflite", "could not be loaded as a TFLite"),
    C("predict-tflite-random", predict_model("random.tflite"), 1, "random.tflite", "not a TFLite model"),
    C("predict-onnx-empty", predict_model("empty.onnx"), 1, "empty.onnx", "empty (0 bytes)"),
    C("predict-onnx-truncated", predict_model("cut.onnx"), 1, "cut.onnx", "could not be loaded as an ONNX"),
    C("predict-onnx-random", predict_model("random.onnx"), 1, "random.onnx", "could not be loaded as an ONNX"),
    C("predict-keras-empty", predict_model("empty.keras"), 1, "empty.keras", "empty (0 bytes)"),
    C("predict-keras-truncated", predict_model("cut.keras"), 1, "cut.keras", "zip archives"),
    C("predict-keras-random", predict_model("random.keras"), 1, "random.keras", "zip archives"),
    C("predict-onnx-named-tflite", predict_model("onnx_named.tflite"), 1, "onnx_named.tflite", "name it .onnx"),
    C("predict-tflite-named-onnx", predict_model("tflite_named.onnx"), 1, "tflite_named.onnx", "name it .tflite"),
    # Any image model is predicted on (issue 10); the MNIST digit preprocessing only fits 28×28 grey inputs.
    C(
        "predict-input-32x32-mnist",
        lambda ctx: [*predict_model("input32.onnx")(ctx), "--mnist-preprocess"],
        1,
        "input32.onnx",
        "(N, 32, 32, 1)",
        "(N, 28, 28, 1)",
    ),
    C("predict-output-5-ok", predict_model("output5.onnx"), 0),
    C("predict-unknown-suffix", predict_model("model.pt"), 1, "model.pt", "expected one of .tflite"),
    C("predict-model-is-folder", predict_model("idx"), 1, "idx", "neither a run directory"),
    # -- images ------------------------------------------------------------------------------------------
    C("image-missing", predict_image("absent.png"), 1, "absent.png", "does not exist"),
    C("image-text", predict_image("text.png"), 1, "text.png", "not an image edgekit can read", "PNG, JPEG"),
    C("image-zero-bytes", predict_image("zero.png"), 1, "zero.png", "empty (0 bytes)"),
    C("image-header-100k", predict_image("bomb.png"), 1, "bomb.png", "too large", "64 megapixels"),
    C("image-9000x9000", predict_image("big9000.png"), 1, "big9000.png", "9000×9000", "64 megapixels"),
    C("image-truncated-png", predict_image("cut.png"), 1, "cut.png", "corrupt or truncated"),
    C("image-truncated-jpeg", predict_image("cut.jpg"), 1, "cut.jpg", "JPEG file but corrupt or truncated"),
    C("image-is-folder", predict_image("folder.png"), 1, "folder.png", "is a directory"),
    C("image-blank", predict_image("blank.png"), 1, "blank.png", "no digit found", "--no-preprocess"),
    C("image-float-over-range", predict_image("float_huge.tif"), 1, "float_huge.tif", "expected pixels in 0..1"),
    C("image-negative-int32", predict_image("negative.tif"), 1, "negative.tif", "negative values"),
    C("image-npy-objects", predict_image("objects.npy"), 1, "objects.npy", "never loads pickled objects"),
    C("image-cmyk-jpeg-ok", predict_image("cmyk.jpg"), 0),
    C("image-16bit-png-ok", predict_image("grey16.png"), 0),
    C("image-palette-png-ok", predict_image("palette.png"), 0),
    C("image-rgba-png-ok", predict_image("rgba.png"), 0),
    C("image-bilevel-png-ok", predict_image("bilevel.png"), 0),
    # -- damaged files in a run directory ---------------------------------------------------------------
    C(
        "parity-tflite-missing",
        run_damaged("exports/model_fp32.tflite", "missing", "parity", *PARITY_FAST),
        1,
        "model_fp32.tflite",
        "listed in the manifest but missing",
    ),
    C(
        "parity-tflite-tampered",
        run_damaged("exports/model_fp32.tflite", "flip", "parity", *PARITY_FAST),
        1,
        "model_fp32.tflite",
        "does not match the sha256",
    ),
    C(
        "parity-keras-truncated",
        run_damaged("model.keras", "truncated", "parity", *PARITY_FAST, rehash=True),
        1,
        "model.keras",
        "zip archives",
    ),
    C(
        "parity-keras-empty",
        run_damaged("model.keras", "empty", "parity", *PARITY_FAST, rehash=True),
        1,
        "model.keras",
        "empty (0 bytes)",
    ),
    C(
        "parity-onnx-random",
        run_damaged("exports/model_fp32.onnx", "random", "parity", *PARITY_FAST, "-a", "onnx-fp32", rehash=True),
        1,
        "model_fp32.onnx",
        "as an ONNX model",
    ),
    C(
        "parity-tflite-empty",
        run_damaged("exports/model_fp32.tflite", "empty", "parity", *PARITY_FAST, rehash=True),
        1,
        "model_fp32.tflite",
        "empty (0 bytes)",
    ),
    C(
        "parity-output-5",
        replaced("exports/model_fp32.onnx", "output5.onnx", "parity", *PARITY_FAST, "-a", "onnx-fp32"),
        1,
        "model_fp32.onnx",
        "outputs (N, 5)",
        "(N, 10)",
    ),
    C(
        "bench-tampered",
        run_damaged("exports/model_int8.tflite", "flip", "bench", *QUICK_BENCH, "-a", "tflite-int8"),
        1,
        "model_int8.tflite",
        "does not match the sha256",
    ),
    C(
        "bench-tflite-random",
        run_damaged("exports/model_int8.tflite", "random", "bench", *QUICK_BENCH, "-a", "tflite-int8", rehash=True),
        1,
        "model_int8.tflite",
        "not a TFLite model",
    ),
    C(
        "predict-run-tampered",
        lambda ctx: [
            *run_damaged("exports/model_fp32.tflite", "flip", "predict")(ctx),
            ctx.a("digit.png"),
            "-a",
            "tflite-fp32",
        ],
        1,
        "model_fp32.tflite",
        "does not match the sha256",
    ),
    C(
        "predict-run-onnx-truncated",
        lambda ctx: [
            *run_damaged("exports/model_int8.onnx", "truncated", "predict", rehash=True)(ctx),
            ctx.a("digit.png"),
            "-a",
            "onnx-int8",
        ],
        1,
        "model_int8.onnx",
        "as an ONNX model",
    ),
    C("verify-tampered-bundle", _bundle_tampered, 1, "model_int8.tflite", "does not match its sha256"),
    C("verify-bundle-file-missing", _bundle_expected_missing, 1, "tflite-int8.npy", "missing"),
    C("verify-not-gzip", _bundle_archive_garbage, 1, "bundle.tar.gz", "not a readable .tar.gz"),
    # -- data --------------------------------------------------------------------------------------------
    C(
        "data-wrong-shapes",
        lambda ctx: ["train", "--data", ctx.a("wrong_shape.npz"), "--out", str(ctx.tmp / "r")],
        1,
        "wrong_shape.npz",
        "expected (N, 28, 28)",
    ),
    C(
        "data-wrong-shapes-unverified",
        lambda ctx: ["train", "--data", ctx.a("wrong_shape.npz"), "--allow-unverified", "--out", str(ctx.tmp / "r")],
        1,
        "wrong_shape.npz",
        "(N, 28, 28)",
    ),
    C(
        "data-altered-checksum",
        lambda ctx: ["parity", str(ctx.run), *PARITY_FAST, "--data", ctx.a("altered.npz")],
        1,
        "altered.npz",
        "checksums",
        "--allow-unverified",
    ),
    C(
        "data-altered-unverified-ok",
        lambda ctx: [
            "parity",
            str(ctx.run),
            *PARITY_FAST,
            "-a",
            "tflite-fp32",
            "--data",
            ctx.a("altered.npz"),
            "--allow-unverified",
        ],
        0,
        writes=("parity.json",),
    ),
    C(
        "bench-data-altered-checksum",
        lambda ctx: ["bench", str(ctx.run), *QUICK_BENCH, "-a", "tflite-fp32", "--data", ctx.a("altered.npz")],
        1,
        "altered.npz",
        "checksums",
        "--allow-unverified",
    ),
    C(
        "bundle-data-altered-checksum",
        lambda ctx: [
            "bundle",
            str(ctx.run),
            "-a",
            "tflite-int8",
            "--golden",
            "8",
            "--out",
            str(ctx.tmp / "b.tar.gz"),
            "--data",
            ctx.a("altered.npz"),
        ],
        1,
        "altered.npz",
        "checksums",
        "--allow-unverified",
    ),
    C(
        "bundle-data-altered-unverified-ok",
        lambda ctx: [
            "bundle",
            str(ctx.run),
            "-a",
            "tflite-int8",
            "--golden",
            "8",
            "--out",
            str(ctx.tmp / "b.tar.gz"),
            "--data",
            ctx.a("altered.npz"),
            "--allow-unverified",
        ],
        0,
        writes=("b.tar.gz",),
    ),
    C(
        "mcu-data-altered-checksum",
        lambda ctx: ["mcu", str(ctx.run), "--data", ctx.a("altered.npz")],
        1,
        "altered.npz",
        "checksums",
        "--allow-unverified",
    ),
    C(
        "data-not-zip",
        lambda ctx: ["train", "--data", ctx.a("notzip.npz"), "--out", str(ctx.tmp / "r")],
        1,
        "notzip.npz",
        "not a zip archive",
    ),
    C(
        "data-idx-file-missing",
        lambda ctx: ["train", "--data", ctx.a("idx"), "--out", str(ctx.tmp / "r")],
        1,
        "t10k-labels-idx1-ubyte",
        "expected the four files",
    ),
    # -- options -----------------------------------------------------------------------------------------
    C(
        "export-onnx-fp16",
        lambda ctx: ["export", str(ctx.run), "-f", "onnx", "-p", "fp16"],
        1,
        "--precision",
        "onnx: fp32, int8",
    ),
    C("train-epochs-0", lambda ctx: ["train", "--epochs", "0", "--out", str(ctx.tmp / "r")], 2),
    C("bench-threads-0", lambda ctx: ["bench", str(ctx.tmp), "--threads", "0"], 2),
    C("bench-min-runs-0", lambda ctx: ["bench", str(ctx.tmp), "--min-runs", "0"], 2),
    C("export-calibration-0", lambda ctx: ["export", str(ctx.tmp), "--calibration-size", "0"], 2),
    C("parity-limit-0", lambda ctx: ["parity", str(ctx.tmp), "--limit", "0"], 2),
    C("predict-top-k-11", lambda ctx: ["predict", ctx.a("input32.onnx"), ctx.a("digit.png"), "-k", "11"], 2),
    C(
        "bench-max-regression-abc",
        lambda ctx: ["bench", str(ctx.run), "--baseline", ctx.a("baseline.json"), "--max-regression", "abc"],
        1,
        "--max-regression",
        "10%",
    ),
    C(
        "bench-unknown-artifact",
        lambda ctx: ["bench", str(ctx.run), "-a", "tflite-int4"],
        1,
        "tflite-int4",
        "this run has",
    ),
    C("gate-without-baseline", lambda ctx: ["gate", str(ctx.tmp)], 1, "--baseline"),
    C(
        "parity-runs-dir-without-latest",
        lambda ctx: ["parity", "--runs-dir", str(ctx.tmp / "elsewhere")],
        1,
        "elsewhere/latest does not exist",
    ),
    # -- unwritable output (a path under a regular file) ------------------------------------------------------
    C(
        "train-out-under-file",
        lambda ctx: ["train", "--out", str(_file_in_the_way(ctx) / "sub"), "--epochs", "1"],
        1,
        "a_file",
        "choose another --out",
    ),
    C(
        "bundle-out-under-file",
        lambda ctx: [
            "bundle",
            str(ctx.run),
            "-a",
            "tflite-int8",
            "--golden",
            "8",
            "--out",
            str(_file_in_the_way(ctx) / "b.tar.gz"),
        ],
        1,
        "a_file",
        "not a directory",
    ),
    C(
        "predict-save-inputs-under-file",
        lambda ctx: [*predict_image("digit.png")(ctx), "--save-inputs", str(_file_in_the_way(ctx) / "seen")],
        1,
        "a_file",
        "not a directory",
    ),
    C(
        "verify-out-under-file",
        lambda ctx: ["verify", str(ctx.bundle()), "--out", str(_file_in_the_way(ctx) / "v.json")],
        1,
        "a_file",
        "not a directory",
    ),
    # -- a full disk (RLIMIT_FSIZE: writes past the limit fail with EFBIG) ---------------------------------------
    C(
        "full-disk-parity-json",
        lambda ctx: ["parity", str(ctx.run), *PARITY_FAST, "-a", "tflite-fp32"],
        1,
        "parity.json",
        "File too large",
        "free disk space",
        fsize=1000,
    ),
    C(
        "full-disk-bundle-archive",
        lambda ctx: ["bundle", str(ctx.run), "-a", "tflite-int8", "--golden", "8", "--out", str(ctx.tmp / "b.tar.gz")],
        1,
        "b.tar.gz",
        "File too large",
        "free disk space",
        fsize=200_000,
    ),
    C(
        "full-disk-bundle-folder",
        lambda ctx: ["bundle", str(ctx.run), "-a", "tflite-int8", "--golden", "2000", "--out", str(ctx.tmp / "b")],
        1,
        "cannot write bundle",
        "free disk space",
        fsize=1_000_000,
    ),
]


# -- running and checking --------------------------------------------------------------------------------
def _snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for root in roots:
        for p in root.rglob("*"):
            if p.is_file() or p.is_symlink():
                st = p.lstat()
                out[str(p)] = (st.st_size, st.st_mtime_ns)
    return out


def _cli(args: list[str], fsize: int | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200", "PYTHONDONTWRITEBYTECODE": "1"}

    def limit_file_size() -> None:  # runs in the child, before exec
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        assert fsize is not None
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run(
        [sys.executable, "-m", "toolkit.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        preexec_fn=limit_file_size if fsize else None,
    )


@pytest.fixture(scope="module", autouse=True)
def _print_table(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not RESULTS:
        return
    width = max(len(r[0]) for r in RESULTS)
    lines = [f"bad-input matrix: {len(RESULTS)} cases", f"{'case':<{width}}  exit  stderr (first line)"]
    lines += [f"{case:<{width}}  {code:>4}  {line}" for case, code, line in RESULTS]
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None:
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            reporter.write_line("")
            for line in lines:
                reporter.write_line(line)
    target = os.environ.get("EDGEKIT_BAD_INPUTS_TABLE")
    if target:
        Path(target).write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("case", CASES)
def test_bad_input(case: Case, assets: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    ctx = Ctx(tmp_path, assets, request)
    args = case.args(ctx)
    before = _snapshot(tmp_path, assets)
    proc = _cli(args, case.fsize)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    first = lines[0] if lines else ""
    shown = first if case.code != 2 else next((ln.strip("│ ") for ln in lines if "Invalid value" in ln), first)
    RESULTS.append((request.node.callspec.id, proc.returncode, shown[:160]))

    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == case.code, f"{args}\n{proc.stdout}\n{proc.stderr}"
    if case.code == 1:
        assert len(lines) == 1, proc.stderr
        assert first.startswith("error:"), first
        for fragment in case.says:
            assert fragment in first, (fragment, first)
    if case.code == 0 and "--allow-unverified" in args:
        assert lines and all(ln.startswith("warning:") for ln in lines), proc.stderr
        assert "unverified" in lines[0], lines[0]
    if case.code == 2:
        assert "Invalid value" in proc.stderr or "Usage:" in proc.stderr, proc.stderr

    # Nothing half-written: no new file anywhere under the case's folders (the run lock aside), no
    # temporary left behind, and no existing file changed by a failed command.
    after = _snapshot(tmp_path, assets)
    new = sorted(p for p in after.keys() - before.keys() if not p.endswith(".edgekit.lock"))
    if case.code == 0:
        new = [p for p in new if Path(p).name not in case.writes]
    assert not [p for p in after if ".partial" in p], after
    assert not new, new
    if case.code != 0:
        changed = [p for p in before.keys() & after.keys() if before[p] != after[p] and not p.endswith(".lock")]
        assert not changed, changed
