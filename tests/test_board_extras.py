"""OpenVINO on the boards: what a board install adds for a bundle holding an IR, and the board's sysfs under QEMU.

A bundle with an OpenVINO IR makes a 64-bit board's install `edgekit[openvino]` (`toolkit.remote.extras`); any
other bundle installs exactly the core set. 32-bit ARM has no OpenVINO wheel: verify skips the IR in one line.
The emulated board's /sys carries what OpenVINO's CPU plugin reads (topology masks for hwloc, MIDR_EL1).
The end-to-end runs are in test_emulate.py (QEMU) and test_remote.py (a real sshd).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtimes.openvino_import import not_installed
from toolkit.emulate import chroot
from toolkit.emulate.boards import BOARDS
from toolkit.remote import extras, host_install


def test_the_marker_records_the_extras_and_a_venv_with_them_serves_a_bundle_without() -> None:
    sha = "ab" * 32
    assert extras.marker_value(sha, ()) == sha  # a core install's marker is as before
    with_ov = extras.marker_value(sha, ["openvino"])
    assert with_ov == f"{sha}+openvino"
    assert extras.covers(with_ov, sha, ()) and extras.covers(with_ov, sha, ["openvino"])
    assert not extras.covers(sha, sha, ["openvino"])  # the core venv lacks it: an install
    assert not extras.covers(f"{'cd' * 32}+openvino", sha, ())  # another wheel
    assert not extras.covers("", sha, ())


def test_openvino_is_added_only_where_it_has_wheels() -> None:
    assert extras.supported(["openvino"], "aarch64") == ("openvino",)
    assert extras.supported(["openvino"], "x86_64") == ("openvino",)
    assert extras.supported(["openvino"], "armv7l") == ()
    assert extras.supported((), "aarch64") == ()
    # Its aarch64 wheels are manylinux_2_35: Debian 12 has them, Debian 11 (glibc 2.31) none.
    assert extras.supported(["openvino"], "aarch64", "glibc-2.36") == ("openvino",)
    assert extras.supported(["openvino"], "aarch64", "glibc-2.31") == ()


def test_a_board_without_an_openvino_wheel_says_why_in_one_line() -> None:
    reason = not_installed("armv7l")
    assert reason.startswith("OpenVINO has no wheels for armv7l;") and "64-bit OS" in reason and "\n" not in reason
    assert "pip install 'edgekit[openvino]'" in not_installed("aarch64")
    old = not_installed("aarch64", "glibc-2.31")
    assert old.startswith("OpenVINO's aarch64 wheels need glibc 2.35 or newer and this OS has glibc 2.31;"), old


def test_the_host_installs_the_wheel_with_its_extras() -> None:
    """host_install.py's pip commands: `wheel[openvino]` with extras, the wheel alone without (as before)."""
    (step,) = host_install.pip_steps("/job/edgekit-0.1.0-py3-none-any.whl", "", None, False, ["openvino"])
    assert step[-1] == "/job/edgekit-0.1.0-py3-none-any.whl[openvino]"
    (core,) = host_install.pip_steps("/job/edgekit-0.1.0-py3-none-any.whl", "", None, False)
    assert core[-1] == "/job/edgekit-0.1.0-py3-none-any.whl" and core[:-1] == step[:-1]


def test_the_openvino_extra_of_the_built_wheel_is_the_pinned_openvino(tmp_path: Path) -> None:
    from toolkit.remote.wheel import build_wheel, source_root

    wheel = build_wheel(tmp_path)
    pinned = next(
        line.strip()
        for line in (source_root() / "constraints.txt").read_text().splitlines()
        if line.startswith("openvino==")
    )
    assert extras.extra_requirements(wheel, ["openvino"]) == [pinned]
    assert extras.extra_requirements(wheel, []) == []


def test_the_board_cores_report_their_midr() -> None:
    """MIDR_EL1 as the real boards' /sys/devices/system/cpu/cpu0/regs/identification/midr_el1 shows it."""
    assert BOARDS["pi5"].midr == 0x414FD0B1  # Cortex-A76 r4p1 (BCM2712)
    assert BOARDS["pi4"].midr == 0x410FD083  # Cortex-A72 r0p3 (BCM2711)
    assert BOARDS["pi3"].midr == 0x410FD034  # Cortex-A53 r0p4 (BCM2837)


def test_the_emulated_sysfs_has_the_topology_hwloc_reads(tmp_path: Path) -> None:
    chroot._cpu_entries(tmp_path, BOARDS["pi5"], [0, 1])
    topology = tmp_path / "cpu1" / "topology"
    read = {p.name: p.read_text().strip() for p in topology.iterdir()}
    assert read["thread_siblings"] == "2" and read["core_siblings"] == "3" and read["core_siblings_list"] == "0-1"
    assert read["core_id"] == "1" and read["physical_package_id"] == "0"
    midr = (tmp_path / "cpu0" / "regs" / "identification" / "midr_el1").read_text().strip()
    assert midr == "0x00000000414fd0b1"
    assert chroot._cpu_mask(list(range(40))) == "ff,ffffffff"  # Linux's comma-separated 32-bit groups
    chroot._cpu_entries(tmp_path / "odd", BOARDS["pi4"], [2, 5])
    assert (tmp_path / "odd" / "cpu5" / "topology" / "package_cpus_list").read_text() == "2,5\n"


@pytest.mark.parametrize("archive", [False, True])
def test_bundle_extras_reads_only_bundle_json(tmp_path: Path, archive: bool) -> None:
    """From a folder or a .tar.gz; an unreadable bundle asks for nothing (verify refuses it in one line)."""
    from toolkit.bundles.archive import write_tar

    folder = tmp_path / "b"
    folder.mkdir()
    arts = [{"name": "tflite-fp32", "runtime": "tflite"}, {"name": "onnx-int8", "runtime": "onnxruntime"}]
    (folder / "bundle.json").write_text(json.dumps({"artifacts": arts}))
    target = folder
    if archive:
        target = tmp_path / "b.tar.gz"
        write_tar(folder, target, "b")
    assert extras.bundle_extras(target) == ()
    arts.append({"name": "openvino-int8", "runtime": "openvino"})
    (folder / "bundle.json").write_text(json.dumps({"artifacts": arts}))
    if archive:
        write_tar(folder, target, "b")
    assert extras.bundle_extras(target) == ("openvino",)
    assert extras.bundle_extras(tmp_path / "missing") == ()
