"""`edgekit bundle` and `edgekit verify`: contents, checksums, safe extraction, tolerances, exit codes."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runtimes.files import sha256_file
from tests.test_cli import assert_one_line_error
from toolkit.bundles.archive import safe_extract, write_tar
from toolkit.bundles.build import build_bundle
from toolkit.bundles.errors import BundleError
from toolkit.bundles.format import BUNDLE_JSON
from toolkit.bundles.verify import tolerance_for
from toolkit.tolerances import DEFAULT_STEP, FP16_MAX_ABS, FP32_MAX_ABS

GOLDEN = 64


@pytest.fixture(scope="module")
def bundle_dir(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle folder of every non-Keras artifact of small_run, 64 golden images."""
    out = tmp_path_factory.mktemp("bundles") / "device-bundle"
    build_bundle(small_run, out, golden=GOLDEN)
    return out


@pytest.fixture
def bundle_copy(bundle_dir: Path, tmp_path: Path) -> Path:
    """A private copy of `bundle_dir` that a test may damage."""
    return Path(shutil.copytree(bundle_dir, tmp_path / "bundle"))


def _doc(bundle: Path) -> dict:
    return json.loads((bundle / BUNDLE_JSON).read_text())


def _rewrite(bundle: Path, rel: str, array: np.ndarray) -> None:
    """Replace a bundle file and update its sha256, as a consistent (not tampered) bundle would have it."""
    np.save(bundle / rel, array, allow_pickle=False)
    doc = _doc(bundle)
    doc["files"][rel]["sha256"] = sha256_file(bundle / rel)
    (bundle / BUNDLE_JSON).write_text(json.dumps(doc))


def test_bundle_contents(bundle_dir: Path, small_run: Path, mnist) -> None:
    doc = _doc(bundle_dir)
    manifest = json.loads((small_run / "manifest.json").read_text())
    names = [a["name"] for a in doc["artifacts"]]
    assert names == [a["name"] for a in manifest["artifacts"] if a["format"] != "keras"]  # default: all but Keras
    assert doc["schema_version"] == 1 and doc["kind"] == "edgekit-bundle" and doc["created_utc"]
    assert doc["source"]["run"] == small_run.name and doc["environment"]["cpu_model"]
    assert doc["environment"]["runtime_versions"]["tflite"]
    # golden: the LAST N test images and their labels
    inputs = np.load(bundle_dir / "golden" / "inputs.npy")
    labels = np.load(bundle_dir / "golden" / "labels.npy")
    assert inputs.dtype == np.float32 and inputs.shape == (GOLDEN, 28, 28, 1)
    np.testing.assert_array_equal(inputs[..., 0], mnist.x_test[-GOLDEN:] / np.float32(255))
    np.testing.assert_array_equal(labels, mnist.y_test[-GOLDEN:])
    # every file but bundle.json is listed with its sha256 and size
    on_disk = sorted(p.relative_to(bundle_dir).as_posix() for p in bundle_dir.rglob("*") if p.is_file())
    assert sorted(doc["files"]) == [f for f in on_disk if f != BUNDLE_JSON]
    for rel, meta in doc["files"].items():
        assert meta["sha256"] == sha256_file(bundle_dir / rel)
        assert meta["size_bytes"] == (bundle_dir / rel).stat().st_size
    # per artifact: the run's file and spec, a tolerance, and the desktop's outputs from its own runtime
    from runtimes.registry import make_runner

    by_name = {a["name"]: a for a in manifest["artifacts"]}
    for art in doc["artifacts"]:
        src = by_name[art["name"]]
        assert art["sha256"] == src["sha256"] == sha256_file(bundle_dir / art["path"])
        assert art["input"] == src["input"] and art["output"] == src["output"]
        assert art["size_bytes"] == src["size_bytes"]
        expected = np.load(bundle_dir / art["expected"])
        assert expected.dtype == np.float32 and expected.shape == (GOLDEN, 10)
        with make_runner(bundle_dir / art["path"]) as runner:
            np.testing.assert_array_equal(runner.infer(inputs), expected)
    int8 = next(a for a in doc["artifacts"] if a["name"] == "tflite-int8")
    assert int8["input"]["scale"] and int8["output"]["zero_point"] is not None
    # the folder is also a run directory for bench/report: a manifest of just the bundled artifacts
    small = json.loads((bundle_dir / "manifest.json").read_text())
    assert [a["name"] for a in small["artifacts"]] == names


def _entry(precision: str, output_scale: float | None = None) -> Any:
    """A manifest entry of a TFLite artifact at `precision` (an int8 output with `output_scale`)."""
    from runtimes.spec import TensorSpec
    from toolkit.run.documents import ArtifactEntry

    output = None if output_scale is None else TensorSpec("out", (None, 10), "int8", output_scale, -128)
    return ArtifactEntry(
        name=f"tflite-{precision}",
        path="exports/x.tflite",
        format="tflite",
        precision=precision,
        runtime="tflite",
        size_bytes=1,
        sha256="0" * 64,
        output=output,
    )


def test_tolerances() -> None:
    assert tolerance_for(_entry("fp32")).max_abs == FP32_MAX_ABS == 1e-5
    assert tolerance_for(_entry("fp16")).max_abs == FP16_MAX_ABS == 1e-3
    int8_io = tolerance_for(_entry("int8", output_scale=0.00390625))
    assert (int8_io.kind, int8_io.max_abs, int8_io.step) == ("quantization_step", 0.00390625, 0.00390625)
    assert tolerance_for(_entry("int8-dynamic")).step == DEFAULT_STEP


def test_onnx_qdq_step_comes_from_the_model(bundle_dir: Path) -> None:
    pytest.importorskip("onnx")
    art = next(a for a in _doc(bundle_dir)["artifacts"] if a["name"] == "onnx-int8")
    assert "DequantizeLinear" in art["tolerance"]["basis"]
    assert 0 < art["tolerance"]["step"] < 0.05


def test_verify_folder_passes_and_writes_verify_json(edgekit, bundle_copy: Path) -> None:
    proc = edgekit("verify", str(bundle_copy))
    assert proc.returncode == 0, proc.stderr
    assert f"Verify {bundle_copy}" in proc.stdout and "pass" in proc.stdout
    report = json.loads((bundle_copy / "verify.json").read_text())
    assert report["passed"] and report["schema_version"] == 1 and report["golden"]["images"] == GOLDEN
    assert report["environment"]["machine"] and report["bundle"]["source"]["run"]
    rows = {r["artifact"]: r for r in report["results"]}
    assert set(rows) == {a["name"] for a in _doc(bundle_copy)["artifacts"]}
    for r in rows.values():
        # Same machine, same runtimes: identical outputs.
        assert r["status"] == "pass" and r["max_abs_diff"] == 0.0 and r["agreement"] == 1.0
        assert r["accuracy"] == r["desktop_accuracy"] and r["backend"]


def test_bundle_and_verify_tar_gz_through_the_cli(edgekit, small_run: Path, tmp_path: Path) -> None:
    archive = tmp_path / "board.tar.gz"
    proc = edgekit(
        "bundle", str(small_run), "--out", str(archive), "-a", "tflite-int8", "-a", "onnx-fp32", "--golden", "32"
    )
    assert proc.returncode == 0, proc.stderr
    assert "Wrote" in proc.stdout and "tflite-int8" in proc.stdout
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        assert all(n == "board" or n.startswith("board/") for n in names)
        assert all(m.isfile() or m.isdir() for m in tar.getmembers())
    assert "board/exports/model_int8.tflite" in names and "board/exports/model_fp32.tflite" not in names
    proc = edgekit("verify", str(archive))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "board.verify.json").read_text())  # beside the archive
    assert [r["artifact"] for r in report["results"]] == ["tflite-int8", "onnx-fp32"] and report["passed"]
    proc = edgekit("verify", str(archive), "--out", str(tmp_path / "elsewhere.json"))
    assert proc.returncode == 0 and (tmp_path / "elsewhere.json").is_file()
    # an existing --out is not replaced without --force; with it, it is
    assert_one_line_error(edgekit("bundle", str(small_run), "--out", str(archive)), "already exists", "--force")
    proc = edgekit("bundle", str(small_run), "--out", str(archive), "--force", "-a", "tflite-fp16", "--golden", "8")
    assert proc.returncode == 0, proc.stderr
    assert not list(tmp_path.glob(".board*"))  # no temporary leftovers


@pytest.mark.parametrize(
    "rel", ["exports/model_fp32.tflite", "golden/inputs.npy", "expected/onnx-int8.npy", "manifest.json"]
)
def test_one_changed_byte_is_refused(edgekit, bundle_copy: Path, rel: str, tmp_path: Path) -> None:
    target = bundle_copy / rel
    data = bytearray(target.read_bytes())
    data[-1] ^= 0x01
    target.write_bytes(bytes(data))
    proc = edgekit("verify", str(bundle_copy))
    assert_one_line_error(proc, rel, "does not match its sha256")
    assert not (bundle_copy / "verify.json").exists()
    # the same inside an archive
    archive = tmp_path / "tampered.tar.gz"
    write_tar(bundle_copy, archive, "tampered")
    assert_one_line_error(edgekit("verify", str(archive)), rel, str(archive), "does not match its sha256")


def test_missing_file_and_bad_bundles(edgekit, bundle_copy: Path, tmp_path: Path) -> None:
    (bundle_copy / "expected" / "tflite-fp16.npy").unlink()
    assert_one_line_error(edgekit("verify", str(bundle_copy)), "expected/tflite-fp16.npy", "missing")
    assert_one_line_error(edgekit("verify", str(tmp_path / "nope")), "does not exist")
    assert_one_line_error(edgekit("verify", str(tmp_path)), f"has no {BUNDLE_JSON}")
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"this is not gzip")
    assert_one_line_error(edgekit("verify", str(junk)), "junk.tar.gz", "not a readable .tar.gz")
    (bundle_copy / BUNDLE_JSON).write_text("{}")
    assert_one_line_error(edgekit("verify", str(bundle_copy)), "not an edgekit bundle")


def _evil_archive(path: Path, kind: str) -> str:
    """A .tar.gz holding a small valid-looking bundle plus one unsafe member; returns that member's name."""
    with tarfile.open(path, "w:gz") as tar:

        def add_file(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add_file("b/bundle.json", b"{}")
        info = tarfile.TarInfo()
        if kind == "absolute":
            info.name = "/tmp/edgekit-evil-absolute"
            add_file(info.name, b"x")
        elif kind == "dotdot":
            info.name = "b/../../edgekit-evil-dotdot"
            add_file(info.name, b"x")
        elif kind == "symlink":
            info.name, info.type, info.linkname = "b/exports/model.tflite", tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
        elif kind == "hardlink":
            info.name, info.type, info.linkname = "b/golden/inputs.npy", tarfile.LNKTYPE, "b/bundle.json"
            tar.addfile(info)
        elif kind == "fifo":
            info.name, info.type = "b/pipe", tarfile.FIFOTYPE
            tar.addfile(info)
        return info.name


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("absolute", "has an absolute path"),
        ("dotdot", "points outside the bundle"),
        ("symlink", "is a symbolic link"),
        ("hardlink", "is a hard link"),
        ("fifo", "special file"),
    ],
)
def test_unsafe_archive_members_are_refused(edgekit, tmp_path: Path, kind: str, fragment: str) -> None:
    archive = tmp_path / "evil" / "evil.tar.gz"
    archive.parent.mkdir()
    member = _evil_archive(archive, kind)
    assert_one_line_error(edgekit("verify", str(archive)), f"member {member!r}", fragment)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(BundleError, match="refused"):
        safe_extract(archive, dest)
    assert not list(dest.iterdir())  # checked before anything is written
    assert not Path("/tmp/edgekit-evil-absolute").exists() and not (tmp_path / "edgekit-evil-dotdot").exists()


def test_a_mismatch_exits_3(edgekit, bundle_copy: Path) -> None:
    expected = np.load(bundle_copy / "expected" / "tflite-fp32.npy")
    _rewrite(bundle_copy, "expected/tflite-fp32.npy", expected + np.float32(3e-5))  # 3× the fp32 limit
    proc = edgekit("verify", str(bundle_copy))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "mismatch for tflite-fp32" in proc.stderr and "Traceback" not in proc.stderr
    report = json.loads((bundle_copy / "verify.json").read_text())
    rows = {r["artifact"]: r for r in report["results"]}
    assert not report["passed"] and rows["tflite-fp32"]["status"] == "fail"
    assert rows["tflite-fp32"]["max_abs_diff"] == pytest.approx(3e-5, rel=0.05)
    assert rows["tflite-fp32"]["values_over_tolerance"] == GOLDEN * 10
    assert all(r["passed"] for name, r in rows.items() if name != "tflite-fp32")


@pytest.mark.parametrize(("steps", "passes"), [(1, True), (2, False)])
def test_int8_allows_one_quantization_step(edgekit, bundle_copy: Path, steps: int, passes: bool) -> None:
    art = next(a for a in _doc(bundle_copy)["artifacts"] if a["name"] == "tflite-int8")
    scale = art["output"]["scale"]
    expected = np.load(bundle_copy / art["expected"])
    expected[:5, 3] += np.float32(steps * scale)  # a few outputs off by `steps` quantization steps
    _rewrite(bundle_copy, art["expected"], expected)
    proc = edgekit("verify", str(bundle_copy))
    assert proc.returncode == (0 if passes else 3), proc.stderr
    results = json.loads((bundle_copy / "verify.json").read_text())["results"]
    row = next(r for r in results if r["artifact"] == "tflite-int8")
    assert row["max_diff_steps"] == pytest.approx(steps, abs=1e-3) and row["passed"] is passes


def test_bench_and_report_work_on_a_bundle_folder(edgekit, bundle_copy: Path) -> None:
    proc = edgekit("bench", str(bundle_copy), "-a", "tflite-int8", "-b", "1", "-t", "1", "--quick")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((bundle_copy / "bench.json").read_text())["results"]
    assert edgekit("report", str(bundle_copy)).returncode == 0
    assert edgekit("verify", str(bundle_copy)).returncode == 0  # files the bundle does not list are ignored


def test_predict_from_a_bundle(edgekit, bundle_copy: Path, tmp_path: Path, mnist) -> None:
    from PIL import Image

    image = tmp_path / "seven.png"
    Image.fromarray(mnist.x_test[0]).save(image)  # a 7
    archive = tmp_path / "b.tar.gz"
    write_tar(bundle_copy, archive, "b")
    for model in (bundle_copy, archive):
        proc = edgekit("predict", str(model), str(image), "-a", "tflite-int8", "--json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["artifact"] == "tflite-int8"
    target = bundle_copy / "exports" / "model_int8.tflite"
    target.write_bytes(target.read_bytes()[:-1] + b"\0")
    assert_one_line_error(
        edgekit("predict", str(bundle_copy), str(image), "-a", "tflite-int8"), "model_int8.tflite", "sha256"
    )


def test_bundle_refusals_leave_nothing_behind(edgekit, run_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    assert_one_line_error(edgekit("bundle", str(run_copy), "--out", str(out), "-a", "tflite-int4"), "unknown artifact")
    assert_one_line_error(edgekit("bundle", str(tmp_path / "none"), "--out", str(out)), "does not exist")
    proc = edgekit("bundle", str(run_copy), "--out", str(out), "--golden", "0")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    target = run_copy / "exports" / "model_fp16.tflite"
    target.write_bytes(target.read_bytes()[:-1] + b"\0")
    assert_one_line_error(edgekit("bundle", str(run_copy), "--out", str(out)), "model_fp16.tflite", "sha256")
    assert list(tmp_path.iterdir()) == [run_copy]  # no bundle, no partial folder


def test_force_replaces_a_bundle_folder_in_one_rename(small_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    build_bundle(small_run, out, artifact_names=["tflite-fp32"], golden=4)
    (out / "stale.txt").write_text("from the old bundle")
    with pytest.raises(BundleError, match="already exists"):
        build_bundle(small_run, out, artifact_names=["onnx-fp32"], golden=4)
    _, doc = build_bundle(small_run, out, artifact_names=["onnx-fp32"], golden=4, force=True)
    assert [a.name for a in doc.artifacts] == ["onnx-fp32"] and not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no partial or old folders left


def test_quantized_tflite_carries_the_builtin_kernels_outputs(bundle_dir: Path) -> None:
    """XNNPACK and LiteRT's built-in int8 kernels round differently: the bundle keeps both references, and a
    runtime that did not delegate to XNNPACK is compared with the built-in one (`reference`)."""
    from runtimes.registry import make_runner
    from toolkit.bundles.verify import compare_references

    doc = _doc(bundle_dir)
    arts = {a["name"]: a for a in doc["artifacts"]}
    assert arts["tflite-fp32"]["expected_builtin"] is None and arts["onnx-int8"]["expected_builtin"] is None
    art = arts["tflite-int8"]
    assert art["expected_builtin"] == "expected/tflite-int8.builtin.npy"
    assert art["expected_builtin"] in doc["files"]  # checksummed like every file
    inputs = np.load(bundle_dir / "golden" / "inputs.npy")
    labels = np.load(bundle_dir / "golden" / "labels.npy")
    expected = np.load(bundle_dir / art["expected"])
    builtin = np.load(bundle_dir / art["expected_builtin"])
    assert not np.array_equal(builtin, expected)
    for xnnpack, reference in ((True, "xnnpack"), (False, "builtin")):
        with make_runner(bundle_dir / art["path"], use_xnnpack=xnnpack) as runner:
            outputs, delegated = runner.infer(inputs), runner.is_delegated()
        assert delegated is xnnpack
        row = compare_references(outputs, expected, art, bundle_dir, bundle_dir, labels, None, delegated=delegated)
        assert row["reference"] == reference and row["max_abs_diff"] == 0 and row["passed"]
