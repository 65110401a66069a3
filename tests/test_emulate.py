"""`edgekit verify --emulate pi3|pi4|pi5`: edgekit in an ARM Debian root under QEMU user-mode.

pi4 and pi5 run the core install in an arm64 bookworm root; pi3 the TFLite-only install in an armhf
bullseye root (CPython 3.9, tflite-runtime 2.13, numpy 1.23.5 built from source there once: measured
~20 min cold under QEMU on 2 cores, then cached in `<cache>/built-wheels/`).

The slow tests need root, qemu-user-static, binfmt-support and debootstrap (skipped with the reason
otherwise). The first run builds the arm64 root into the cache (`$EDGEKIT_CACHE_DIR/arm64-bookworm`,
default `~/.cache/edgekit/arm64-bookworm`): measured 4 min 49 s cold on 2 cores (root built in 265 s: debootstrap
~3 min, venv + pip install under emulation ~1.5 min); warm, a board's verify takes ~25 s (this file: ~1 min),
plus ~10 s when edgekit's sources changed (only its wheel is re-installed).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from toolkit.emulate import chroot, rootfs
from toolkit.emulate.boards import BOARDS
from toolkit.emulate.errors import EmulateError

COLD_BUILD_TIMEOUT = 1800  # s: a cold build (~7 min) plus the run, with room for a slow mirror


def _missing_for_emulation() -> str | None:
    if sys.platform != "linux":
        return "needs Linux"
    if os.geteuid() != 0:
        return "needs root (debootstrap, mount, chroot)"
    for tool in (chroot.QEMU, chroot.QEMU_BY_ARCH["armhf"][0], "debootstrap", "chroot"):
        if shutil.which(tool) is None:
            return f"{tool} missing: {chroot.APT_FIX}"
    return None


needs_emulation = pytest.mark.skipif(_missing_for_emulation() is not None, reason=str(_missing_for_emulation()))


@pytest.fixture(scope="module")
def default_bundle(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A default bundle (every non-Keras artifact, 256 golden images) of the small run."""
    from toolkit.bundles.build import build_bundle

    path, _ = build_bundle(small_run, tmp_path_factory.mktemp("emulate") / "bundle")
    return path


# -- fast: no root, no QEMU --------------------------------------------------------------------------
def test_board_names_match_the_cli_choice() -> None:
    from toolkit.cli.device import EmulatedBoard

    assert [b.value for b in EmulatedBoard] == list(BOARDS)


@pytest.mark.parametrize(
    ("board", "core", "part", "simd"),
    [
        ("pi3", "Cortex-A53", "0xd03", "neon"),
        ("pi4", "Cortex-A72", "0xd08", "asimd"),
        ("pi5", "Cortex-A76", "0xd0b", "asimddp"),
    ],
)
def test_board_cpuinfo_reads_like_the_board(board: str, core: str, part: str, simd: str) -> None:
    from benchmarks import environment

    text = BOARDS[board].cpuinfo()
    fields = environment._cpuinfo_fields(text)
    assert fields["CPU part"] == part and fields["CPU implementer"] == "0x41"
    assert simd in fields["Features"].split() and ("asimddp" in fields["Features"].split()) == (board == "pi5")
    assert fields["CPU architecture"] == ("7" if board == "pi3" else "8")
    assert text.count("processor\t:") == 4  # a Pi's four cores by default
    assert BOARDS[board].cpuinfo([0, 1]).count("processor\t:") == 2  # or the host CPUs QEMU may use
    assert environment.ARM_PARTS[part] == core == BOARDS[board].core


def test_mirror_from_apt_sources() -> None:
    deb822 = (
        "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\nURIs: http://mirror.example/debian/\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n"
    )
    assert rootfs.mirror_from_deb822(deb822) == "http://mirror.example/debian"
    listing = (
        "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n"
        "# deb http://commented.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://ftp.example/debian bookworm main contrib\n"
    )
    assert rootfs.mirror_from_list(listing) == "http://ftp.example/debian"
    assert rootfs.mirror_from_list("deb https://deb.nodesource.com/node_20.x nodistro main\n") is None


def test_unknown_board_is_a_choice_error(edgekit, tmp_path: Path) -> None:
    proc = edgekit("verify", str(tmp_path), "--emulate", "pi2")
    assert proc.returncode == 2
    assert "Invalid value for '--emulate'" in proc.stderr and "pi2" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_not_root_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from toolkit.cli import app

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path / "cache"))
    result = CliRunner().invoke(app, ["verify", str(tmp_path), "--emulate", "pi4"])
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "needs root" in lines[0] and "sudo" in lines[0], result.output
    assert not (tmp_path / "cache").exists()


def test_one_cache_for_wheels_and_the_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EDGEKIT_CACHE_DIR holds both; EDGEKIT_CACHE (the name --emulate used before) is read only without it."""
    from toolkit.remote import wheel

    monkeypatch.delenv("EDGEKIT_CACHE_DIR", raising=False)
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "old"))
    assert rootfs.root_dir() == tmp_path / "old" / "arm64-bookworm"
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path / "new"))
    assert wheel.cache_root() == tmp_path / "new" and rootfs.root_dir().parent == wheel.cache_root()
    monkeypatch.delenv("EDGEKIT_CACHE_DIR")
    monkeypatch.delenv("EDGEKIT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert wheel.cache_root() == tmp_path / "xdg" / "edgekit"


def test_missing_qemu_names_the_apt_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda name: None if name == chroot.QEMU else f"/usr/bin/{name}")
    with pytest.raises(EmulateError, match="apt-get install qemu-user-static binfmt-support debootstrap"):
        chroot.check_host(need_debootstrap=True)


def test_mounts_under_reads_mountinfo(tmp_path: Path) -> None:
    assert chroot.mounts_under(tmp_path) == []
    assert Path("/proc") in chroot.mounts_under(Path("/proc")) or sys.platform != "linux"


# -- slow: the real thing -----------------------------------------------------------------------------
def _check_report(report: dict, board: str, bundle: Path) -> None:
    doc = json.loads((bundle / "bundle.json").read_text())
    names = [a["name"] for a in doc["artifacts"]]
    assert [r["artifact"] for r in report["results"]] == names and not report["skipped"]
    assert report["passed"] and all(r["status"] == "pass" for r in report["results"]), report["results"]
    env = report["environment"]
    assert env["machine"] == "aarch64"
    assert BOARDS[board].core in (env["cpu_model"] or "")
    emu = report["emulation"]
    assert emu["board"] == board and emu["qemu_cpu"] == BOARDS[board].qemu_cpu
    packages = emu["rootfs"]["packages"]
    assert int(packages["ai-edge-litert"].split(".")[0]) >= 2 and packages["onnxruntime"] and packages["numpy"]
    versions = {f"ai_edge_litert {packages['ai-edge-litert']}", f"onnxruntime {packages['onnxruntime']}"}
    assert {r["runtime_version"] for r in report["results"]} == versions
    for r in report["results"]:
        print(f"{board} {r['artifact']}: max |Δp| {r['max_abs_diff']:.3g} in {r['seconds']:.2f} s")


@pytest.mark.slow
@needs_emulation
@pytest.mark.parametrize("board", ["pi4", "pi5"])
def test_verify_emulated_board_passes_every_artifact(edgekit, default_bundle: Path, board: str) -> None:
    proc = edgekit("verify", str(default_bundle), "--emulate", board, timeout=COLD_BUILD_TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    target = default_bundle.parent / f"bundle.emulate-{board}.verify.json"
    assert f"Wrote {target}" in proc.stdout.replace("\n", "")
    assert "max |Δp| vs x86" in proc.stdout and "Emulated verify:" in proc.stdout
    assert not (default_bundle / "verify.json").exists()  # the bundle itself is left as it was
    _check_report(json.loads(target.read_text()), board, default_bundle)
    root = rootfs.root_dir()
    assert chroot.mounts_under(root) == []  # everything mounted was unmounted
    assert not list(root.parent.glob(f".{root.name}.partial-*"))
    assert not list((root / "tmp").glob("edgekit-emulate-*"))  # the bundle copy is gone


@pytest.mark.slow
@needs_emulation
def test_parity_on_emulated_arm64_classes_with_and_without_the_dot_product(edgekit, run_copy: Path) -> None:
    """`parity --cpu` in the arm64 root: Cortex-A72 (no dot product) and Cortex-A76 (SDOT/UDOT)."""
    cpus = ["--cpu", "cortex-a72", "--cpu", "cortex-a76", "--cpu-images", "300"]
    proc = edgekit("parity", str(run_copy), *cpus, timeout=COLD_BUILD_TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    section = json.loads((run_copy / "parity.json").read_text())["cpu_classes"]
    classes = {c["name"]: c for c in section["classes"]}
    assert classes["cortex-a72"]["cpu"]["isa_class"] == "arm64" and classes["cortex-a72"]["cpu"]["source"] == "hwcap"
    assert classes["cortex-a76"]["cpu"]["isa_class"] == "arm64-dotprod"
    manifest = json.loads((run_copy / "manifest.json").read_text())
    exports = sorted(a["name"] for a in manifest["artifacts"] if a["name"] != "keras-fp32")
    for name in ("cortex-a72", "cortex-a76"):
        assert sorted(r["artifact"] for r in classes[name]["rows"]) == exports
        assert all(r["passed"] for r in classes[name]["rows"]), classes[name]["rows"]
    root = rootfs.root_dir()
    assert chroot.mounts_under(root) == [] and not list((root / "tmp").glob("edgekit-cpu-*"))


@pytest.mark.slow
@needs_emulation
def test_archive_with_a_mismatch_under_emulation(edgekit, default_bundle: Path, tmp_path: Path) -> None:
    """A .tar.gz works; an expected output changed on the "desktop" is a mismatch (exit 3), not a crash."""
    import numpy as np

    from runtimes.files import sha256_file
    from toolkit.bundles.archive import write_tar

    bad = tmp_path / "folder"
    shutil.copytree(default_bundle, bad)
    doc = json.loads((bad / "bundle.json").read_text())
    rel = next(a["expected"] for a in doc["artifacts"] if a["name"] == "tflite-fp32")
    expected = np.load(bad / rel)
    expected[0, 0] += 0.01
    np.save(bad / rel, expected)
    doc["files"][rel]["sha256"] = sha256_file(bad / rel)
    (bad / "bundle.json").write_text(json.dumps(doc))
    write_tar(bad, tmp_path / "bad.tar.gz", "bad")
    proc = edgekit("verify", str(tmp_path / "bad.tar.gz"), "--emulate", "pi5", timeout=COLD_BUILD_TIMEOUT)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "mismatch" in proc.stderr and "tflite-fp32" in proc.stderr
    report = json.loads((tmp_path / "bad.emulate-pi5.verify.json").read_text())
    assert not report["passed"] and report["bundle"]["path"] == str(tmp_path / "bad.tar.gz")
    assert [r["artifact"] for r in report["results"] if not r["passed"]] == ["tflite-fp32"]
    assert chroot.mounts_under(rootfs.root_dir()) == []


@pytest.mark.slow
@needs_emulation
def test_verify_emulated_32_bit_pi3_runs_tflite_and_skips_onnx(edgekit, default_bundle: Path) -> None:
    """A Pi 3 on Raspberry Pi OS 32-bit: the TFLite artifacts pass on tflite-runtime 2.13 under CPython 3.9
    (int8 against the desktop's built-in-kernel outputs: 2.13 does not run it on XNNPACK); each ONNX artifact
    and int8-dynamic (FULLY_CONNECTED v12, newer than 2.13's kernels) are skipped in one line; exit 0."""
    proc = edgekit("verify", str(default_bundle), "--emulate", "pi3", timeout=COLD_BUILD_TIMEOUT * 2)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((default_bundle.parent / "bundle.emulate-pi3.verify.json").read_text())
    names = [a["name"] for a in json.loads((default_bundle / "bundle.json").read_text())["artifacts"]]
    tflite = [n for n in names if n.startswith("tflite") and n != "tflite-int8-dynamic"]
    onnx = [n for n in names if n.startswith("onnx")]
    assert [r["artifact"] for r in report["results"]] == tflite and report["passed"], report["results"]
    assert [s["artifact"] for s in report["skipped"]] == ["tflite-int8-dynamic", *onnx]
    skipped = {s["artifact"]: s["reason"] for s in report["skipped"]}
    assert "tflite_runtime 2.13.0 has no kernel for FULLY_CONNECTED version 12" in skipped.pop("tflite-int8-dynamic")
    assert all("onnxruntime has no wheels for 32-bit ARM (armv7l)" in reason for reason in skipped.values())
    int8 = next(r for r in report["results"] if r["artifact"] == "tflite-int8")
    assert int8["reference"] == "builtin" and "built-in-kernel outputs" in proc.stdout
    for name in onnx:
        assert f"skipped {name}: onnxruntime has no wheels for 32-bit ARM" in proc.stderr.replace("\n", " ")
    env = report["environment"]
    assert env["machine"] == "armv7l" and env["python"].startswith("3.9.")
    assert env["cpu_model"] == "Raspberry Pi 3 Model B Rev 1.2 (QEMU cortex-a7 emulation) (Cortex-A53)"
    emu = report["emulation"]
    assert emu["rootfs"]["arch"] == "armhf" and emu["rootfs"]["suite"] == "bullseye"
    packages = emu["rootfs"]["packages"]
    assert packages["tflite-runtime"] == "2.13.0" and packages["numpy"].startswith("1.")
    assert {r["runtime_version"] for r in report["results"]} == {"tflite_runtime 2.13.0"}
    root = rootfs.root_dir(rootfs.ROOTS["armhf"])
    assert chroot.mounts_under(root) == []
    for r in report["results"]:
        print(f"pi3 {r['artifact']}: max |Δp| {r['max_abs_diff']:.3g} in {r['seconds']:.2f} s")
    state = emu["rootfs"]["state"]
    print(f"pi3: prepare {emu['prepare_seconds']:.1f} s (root {state}), verify {emu['verify_seconds']:.1f} s")


@pytest.fixture(scope="module")
def openvino_bundle(small_run: Path, mnist, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small run's OpenVINO IRs (fp32, fp16, int8 through NNCF) and tflite-int8 (so the 32-bit board has an
    artifact it can run), in a bundle."""
    pytest.importorskip("nncf", reason="NNCF is not installed (pip install 'edgekit[openvino-int8]')")
    from exporters.base import ExportFormat, Precision
    from toolkit.bundles.build import build_bundle
    from toolkit.steps.export import export_step

    run = tmp_path_factory.mktemp("openvino") / "run"
    shutil.copytree(small_run, run)
    irs = [(ExportFormat.OPENVINO, p) for p in (Precision.FP32, Precision.FP16, Precision.INT8)]
    export_step(run, [(ExportFormat.ONNX, Precision.FP32), *irs], data=mnist, calibration_size=200)
    path, _ = build_bundle(run, run.parent / "bundle", artifact_names=["tflite-int8", *OPENVINO_IRS])
    return path


OPENVINO_IRS = ["openvino-fp32", "openvino-fp16", "openvino-int8"]


@pytest.mark.slow
@needs_emulation
def test_openvino_irs_pass_on_the_arm64_boards_and_are_skipped_on_the_32_bit_one(
    edgekit, openvino_bundle: Path
) -> None:
    """A bundle with OpenVINO IRs adds openvino (aarch64 wheel) to the arm64 root once; every IR passes as a Pi 4
    (no dot product) and a Pi 5; the Pi 3 (armv7l: no OpenVINO wheel) skips each IR in one line, exit 0.
    Measured: 34 s warm for the three boards (60 s when edgekit's wheel is re-installed in both roots), plus
    13 s the first time (openvino into the arm64 root)."""
    from importlib.metadata import version

    for board in ("pi5", "pi4"):
        proc = edgekit("verify", str(openvino_bundle), "--emulate", board, timeout=COLD_BUILD_TIMEOUT)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        report = json.loads((openvino_bundle.parent / f"bundle.emulate-{board}.verify.json").read_text())
        rows = {r["artifact"]: r for r in report["results"]}
        assert list(rows) == ["tflite-int8", *OPENVINO_IRS] and report["passed"] and not report["skipped"]
        assert {rows[n]["runtime_version"] for n in OPENVINO_IRS} == {f"openvino {version('openvino')}"}
        assert report["emulation"]["rootfs"]["packages"]["openvino"] == version("openvino")
        for name in OPENVINO_IRS:
            print(f"{board} {name}: max |Δp| {rows[name]['max_abs_diff']:.3g} in {rows[name]['seconds']:.2f} s")
    proc = edgekit("verify", str(openvino_bundle), "--emulate", "pi3", timeout=COLD_BUILD_TIMEOUT * 2)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((openvino_bundle.parent / "bundle.emulate-pi3.verify.json").read_text())
    assert [r["artifact"] for r in report["results"]] == ["tflite-int8"] and report["passed"]
    assert [s["artifact"] for s in report["skipped"]] == OPENVINO_IRS
    assert all(s["reason"].startswith("OpenVINO has no wheels for armv7l;") for s in report["skipped"])
    assert "openvino" not in report["emulation"]["rootfs"]["packages"]
    for board in BOARDS.values():
        assert chroot.mounts_under(rootfs.root_dir(rootfs.ROOTS[board.arch])) == []


@pytest.mark.slow
@needs_emulation
def test_parity_on_an_emulated_arm64_cpu_runs_the_openvino_irs(edgekit, openvino_bundle: Path) -> None:
    """`parity --cpu` copies each IR's .bin beside its .xml into the arm64 root and adds OpenVINO there."""
    run = openvino_bundle.parent / "run"
    chosen = [arg for name in OPENVINO_IRS for arg in ("-a", name)]
    proc = edgekit(
        "parity", str(run), "--cpu", "cortex-a76", *chosen, "--cpu-images", "300", timeout=COLD_BUILD_TIMEOUT
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    classes = {c["name"]: c for c in json.loads((run / "parity.json").read_text())["cpu_classes"]["classes"]}
    rows = classes["cortex-a76"]["rows"]
    assert [r["artifact"] for r in rows] == OPENVINO_IRS and all(r["passed"] for r in rows), rows
