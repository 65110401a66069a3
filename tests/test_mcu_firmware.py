"""`edgekit mcu --board`: TFLM firmware built with the Arm GNU toolchain and run on QEMU's emulated Cortex-M4.

The slow tests build TFLM for the Cortex-M4 (CMSIS-NN and reference kernels, only the model's ops: about 230
files, 3-4 min cold on 2 cores; cached in edgekit's cache after) and boot the firmware on `mps2-an386`.
Without the toolchain or QEMU they are skipped here and fail in CI (.ci/run installs them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("tflite_micro")

from toolkit.mcu import build as B
from toolkit.mcu.boards import BOARDS, emulated_boards, find_board
from toolkit.mcu.tflm import McuError

TOOLS = ("arm-none-eabi-g++", "arm-none-eabi-size", "qemu-system-arm")
HAVE_TOOLS = all(shutil.which(t) for t in TOOLS)
needs_tools = pytest.mark.skipif(
    not HAVE_TOOLS and not os.environ.get("CI"), reason=f"apt-get install {B.PACKAGES} (CI installs them)"
)
EMULATED = 100  # test images through the firmware: ~9 s with the reference kernels on QEMU


def test_board_names_and_refusals_are_one_line() -> None:
    assert find_board("NANO33BLE").emulated_core == "cortex-m4"
    assert find_board("STM32F746G-DISCO").emulated_core == "cortex-m7"
    assert {b.emulated_core for b in emulated_boards(["all"])} == {"cortex-m4", "cortex-m7", "cortex-m33"}
    for name, expected in (("pico", "Cortex-M0+"), ("esp32s3", "Xtensa")):
        with pytest.raises(McuError) as err:
            emulated_boards([name])
        assert "\n" not in str(err.value) and expected in str(err.value) and "nano33ble" in str(err.value)
    with pytest.raises(McuError) as err:
        find_board("uno")
    assert "\n" not in str(err.value) and all(b.key in str(err.value) for b in BOARDS)
    assert all(b.emulated_core in B.CORES or b.not_emulated for b in BOARDS)


def test_missing_toolchain_names_the_debian_packages(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no compiler, no QEMU
    with pytest.raises(McuError) as err:
        B.check_tools()
    msg = str(err.value)
    assert "\n" not in msg and "apt-get install" in msg
    for package in (
        "gcc-arm-none-eabi",
        "libnewlib-arm-none-eabi",
        "libstdc++-arm-none-eabi-newlib",
        "qemu-system-arm",
    ):
        assert package in msg


def test_cli_board_refusal(small_run: Path, edgekit) -> None:  # type: ignore[no-untyped-def]
    proc = edgekit("mcu", str(small_run), "--board", "pico", "-n", "10")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Cortex-M0+" in lines[0], proc.stderr


def test_shipped_sources_are_checked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A damaged tarball is refused before anything is extracted, in one line that says how to restore it."""
    bad = tmp_path / B.TARBALL
    bad.write_bytes(B.tarball().read_bytes()[:-1] + b"\0")
    monkeypatch.setattr(B, "tarball", lambda: bad)
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(McuError) as err:
        B.sources()
    assert "\n" not in str(err.value) and "git checkout" in str(err.value)
    assert not list((tmp_path / "cache" / "tflm").glob("src-*/tflite-micro"))


@pytest.fixture(scope="module")
def emulated(small_run: Path, tmp_path_factory: pytest.TempPathFactory, mnist) -> tuple[Path, dict]:
    from toolkit.mcu.step import mcu_step
    from toolkit.run.documents import dump_document

    run = tmp_path_factory.mktemp("mcu-fw") / "run"
    shutil.copytree(small_run, run)
    doc = mcu_step(run, limit=EMULATED, data=mnist, boards=["nano33ble"], emulated_images=EMULATED)
    return run, dump_document(doc)


@pytest.mark.slow
@needs_tools
def test_firmware_on_emulated_m4(emulated: tuple[Path, dict]) -> None:
    run, doc = emulated
    (res,) = doc["results"]
    rows = {e["kernels"]: e for e in res["emulated"]}
    assert set(rows) == {"cmsis_nn", "reference"}
    for kernels, e in rows.items():
        assert e["core"] == "cortex-m4" and e["machine"] == "mps2-an386 / cortex-m4" and e["images"] == EMULATED
        # Parity: judged as the host's TFLM row (Keras tolerance, and LiteRT's own two kernel sets' difference
        # as the int8 allowance against LiteRT's built-in kernels).
        assert e["passed"] and not e["failures"], (kernels, e)
        assert e["max_int8_steps_vs_builtin"] <= e["litert_rounding_steps"]
        # The smallest arena is arena_used_bytes rounded up to the 16-byte step of the search (TFLM aligns
        # the arena's head and tail to 16 bytes, so nothing else is lost).
        assert e["min_arena_bytes"] == -(-e["arena_used_bytes"] // 16) * 16, e
        size = e["size"]
        assert size["flash_bytes"] == size["text"] + size["data"]
        assert size["flash_model"] >= res["flash"]["model_bytes"]  # the array (plus at most its alignment)
        assert size["flash_model"] - res["flash"]["model_bytes"] < 16
        assert size["flash_model"] + size["flash_tflm"] + size["flash_rest"] == size["flash_bytes"]
        assert 0 < size["flash_tflm"] < size["flash_bytes"] and size["flash_rest"] > 0
        assert 512 <= e["stack_bytes"] < 64 * 1024  # below the painted region's top gap would be a failed paint
        assert e["ram_needed_bytes"] == e["min_arena_bytes"] + size["ram_tflm"] + size["ram_rest"] + e["stack_bytes"]
        assert (run / e["elf"]).is_file()
        assert e["instructions_per_inference"] > 0
    # CMSIS-NN's kernels were the ones linked: more kernel code (its own library) and far fewer instructions.
    assert rows["cmsis_nn"]["size"]["flash_tflm"] > rows["reference"]["size"]["flash_tflm"]
    assert rows["cmsis_nn"]["instructions_per_inference"] < rows["reference"]["instructions_per_inference"] / 2
    # The Nano 33 BLE Sense (Cortex-M4) is sized with the measured firmware; boards not emulated say why.
    boards = {b["board"]: b for b in res["boards"]}
    nano = boards["Arduino Nano 33 BLE Sense"]
    assert (
        nano["sized_with"].startswith("measured") and nano["ram_needed_bytes"] == rows["cmsis_nn"]["ram_needed_bytes"]
    )
    assert nano["flash_needed_bytes"] == rows["cmsis_nn"]["size"]["flash_bytes"]
    assert "Cortex-M0+" in boards["Raspberry Pi Pico"]["sized_with"]
    # The header carries the measured arena.
    header = (run / "mcu" / "tflite-int8" / "model_data.h").read_text()
    arena = max(e["min_arena_bytes"] for e in rows.values())
    assert f"constexpr size_t kTensorArenaSize = {arena};" in header and "emulated by QEMU" in header


@pytest.mark.slow
@needs_tools
def test_main_example_runs_on_emulated_m4(emulated: tuple[Path, dict], tmp_path: Path) -> None:
    """The generated example, as a user builds it: model_data.cc + main_example.cc + TFLM, on a Cortex-M4."""
    from toolkit.mcu.emulated import qemu_command
    from toolkit.mcu.tflm import read_model

    run, doc = emulated
    (res,) = doc["results"]
    fw = run / "mcu" / "tflite-int8"
    ops = read_model((run / res["path"]).read_bytes(), "model").ops
    core = B.CORES["cortex-m4"]
    lib = B.library(core, "cmsis_nn", ops)
    assert lib.compiled == 0  # the fixture's run built and cached it
    elf, sizes = B.link(core, "cmsis_nn", lib, fw, fw / "main_example.cc", tmp_path)
    proc = subprocess.run(
        qemu_command(core, elf),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-500:]
    expected = int(out.split("expected ")[1].split(")")[0])
    assert f"class {expected} (expected {expected})" in out
    # The example's arena is kTensorArenaSize: the smallest arena measured by the runner, and enough.
    assert sizes.arena_buffer == max(e["min_arena_bytes"] for e in res["emulated"])


def test_map_split_on_a_small_map() -> None:
    """The map reader attributes input sections by file (TFLM's cache, the model array, the rest)."""
    cache = Path("/cache/tflm/x")
    text = "\n".join(
        [
            "Discarded input sections",
            " .text.unused   0x00000000       0x40 /cache/tflm/x/obj/a.cc.o",
            "Linker script and memory map",
            ".text           0x00000000      0x200",
            " .text.Invoke   0x00000000      0x100 /cache/tflm/x/obj/conv.cc.o",
            " .rodata.g_model_data",
            "                0x00000100       0xa0 /tmp/b/model_data.cc.o",
            " .text.main     0x000001a0       0x60 /tmp/b/runner.cc.o",
            ".ARM.attributes",
            " .ARM.attributes",
            "                0x00000000       0x22 /cache/tflm/x/obj/conv.cc.o",
            ".bss            0x20000000      0x110",
            " .bss._ZL12tensor_arena",
            "                0x20000000      0x100 /tmp/b/runner.cc.o",
            " .bss.x         0x20000100       0x10 /cache/tflm/x/obj/conv.cc.o",
        ]
    )
    parts = B.map_sizes(text, cache)
    assert parts[(".text", "tflm")] == 0x100 and parts[(".text", "model")] == 0xA0 and parts[(".text", "rest")] == 0x60
    assert parts[(".bss", "arena")] == 0x100 and parts[(".bss", "tflm")] == 0x10
    assert (".bss", "rest") not in parts and sum(v for (s, _), v in parts.items() if s == ".bss") == 0x110


def test_kernel_sources_follow_the_ops() -> None:
    """Only the model's kernels are compiled: CMSIS-NN's file where it has one, TFLM's own otherwise."""
    src = B.sources()
    cmsis = B.kernel_sources(src, "cmsis_nn", ("CONV_2D", "RESHAPE"))
    ref = B.kernel_sources(src, "reference", ("CONV_2D", "RESHAPE"))
    assert "tensorflow/lite/micro/kernels/cmsis_nn/conv.cc" in cmsis and "tensorflow/lite/micro/kernels/conv.cc" in ref
    assert (
        "tensorflow/lite/micro/kernels/reshape.cc" in cmsis and "tensorflow/lite/micro/kernels/reshape_common.cc" in ref
    )
    assert not any("cmsis_nn" in s for s in ref) and not any("softmax" in s for s in ref)
    with pytest.raises(McuError) as err:
        B.kernel_sources(src, "reference", ("NO_SUCH_OP",))
    assert "NO_SUCH_OP" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
@needs_tools
def test_report_shows_the_emulated_firmware(emulated: tuple[Path, dict]) -> None:
    from toolkit.reports import write_report

    run, doc = emulated
    (res,) = doc["results"]
    md_path, html_path = write_report(run)
    for text in (md_path.read_text(), html_path.read_text()):
        assert "Firmware on emulated Cortex-M cores" in text and "cortex-m4 cmsis_nn" in text
        for e in res["emulated"]:
            assert f"{e['arena_used_bytes']:,} B" in text and f"{e['size']['flash_tflm']:,} B" in text
        assert "not a latency" in text and "Cortex-M0+" in text
