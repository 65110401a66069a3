"""The CPU's instruction-set class (issue 19): detection here and under QEMU CPU models, and the gate's refusal.

Detection reads CPUID through numpy (x86-64) and the kernel's HWCAPs (Arm); QEMU user-mode emulates both, so
`qemu-x86_64-static -cpu Haswell-v4` must report an AVX2 machine whatever CPU runs the tests.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.cpu import AT_HWCAP, AT_HWCAP2, CpuDescription, _x86, auxv_hwcaps, cpuinfo_flags, detect_cpu, isa_class

REPO = Path(__file__).resolve().parent.parent
SAVED = REPO / "benchmarks" / "results" / "2026-11-29-x86_64-epyc-2cpu" / "bench.json"
QEMU_X86 = shutil.which("qemu-x86_64-static")
# CI installs QEMU (.ci/run): there a missing one fails the emulated-CPU checks instead of skipping them.
needs_qemu = pytest.mark.skipif(
    QEMU_X86 is None and not os.environ.get("CI"), reason="qemu-x86_64-static missing: apt-get install qemu-user-static"
)


@pytest.mark.parametrize(
    ("arch", "features", "expected"),
    [
        ("x86-64", ("sse4.2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx"), "x86-64-amx"),
        ("x86-64", ("sse4.2", "avx", "avx2", "fma", "avx512f", "avx512_vnni"), "x86-64-avx512-vnni"),
        ("x86-64", ("sse4.2", "avx", "avx2", "fma", "avx_vnni"), "x86-64-avx-vnni"),
        ("x86-64", ("sse4.2", "avx", "avx2", "fma", "avx512f"), "x86-64-avx512"),  # Skylake-SP: saturates too
        ("x86-64", ("sse4.2", "avx", "avx2", "fma"), "x86-64-avx2"),
        ("x86-64", ("sse4.2", "avx"), "x86-64-avx"),
        ("x86-64", ("sse4.2",), "x86-64-sse4.2"),
        ("x86-64", (), "x86-64"),
        ("arm64", ("asimd", "asimddp", "i8mm", "sve", "bf16"), "arm64-i8mm"),
        ("arm64", ("asimd", "asimddp"), "arm64-dotprod"),
        ("arm64", ("asimd",), "arm64"),
        ("armv7", ("neon", "vfpv4"), "armv7-neon-vfpv4"),
        ("riscv64", (), "riscv64"),
    ],
)
def test_isa_class_is_the_best_tier_the_features_reach(arch: str, features: tuple[str, ...], expected: str) -> None:
    assert isa_class(arch, features) == expected


def test_hwcaps_are_read_from_an_auxiliary_vector() -> None:
    # An arm64 kernel's vector for a Cortex-A76 (the values QEMU gives cortex-a76): asimd and asimddp, no i8mm.
    word = "@LL"
    data = b"".join(struct.pack(word, k, v) for k, v in ((6, 4096), (AT_HWCAP, 0x119FFB), (AT_HWCAP2, 0), (0, 0)))
    caps = auxv_hwcaps(data)
    assert caps == {AT_HWCAP: 0x119FFB, AT_HWCAP2: 0}
    assert caps[AT_HWCAP] >> 20 & 1 and caps[AT_HWCAP] >> 1 & 1 and not caps[AT_HWCAP2] >> 13 & 1
    assert auxv_hwcaps(b"") is None


def test_cpuinfo_features_are_trusted_only_where_they_agree_with_cpuid() -> None:
    line = "fpu sse4_2 avx avx2 fma avx512f avx512_vnni avx_vnni amx_tile amx_int8"
    flags = cpuinfo_flags(f"processor : 0\nflags : {line}\n")
    assert flags is not None and "amx_int8" in flags
    native = {"SSE42": True, "AVX": True, "AVX2": True, "FMA3": True, "AVX512F": True, "AVX512VNNI": True}
    agree = _x86(native, flags)
    assert agree.isa_class == "x86-64-amx" and agree.source == "cpuid+cpuinfo" and agree.note is None
    # Under QEMU's Haswell the process sees CPUID without AVX-512 while /proc/cpuinfo still describes the host.
    haswell = {**native, "AVX512F": False, "AVX512VNNI": False}
    emulated = _x86(haswell, flags)
    assert emulated.isa_class == "x86-64-avx2" and emulated.source == "cpuid"
    assert emulated.note and "avx512f" in emulated.note
    assert "avx_vnni" not in emulated.checked and "amx" not in emulated.checked  # not checked, not "absent"
    assert emulated.int8_dot_product is False


def test_this_machine_is_described_consistently() -> None:
    cpu = detect_cpu()
    assert isinstance(cpu, CpuDescription) and cpu.source != "none"
    assert cpu.isa_class == isa_class(cpu.arch, cpu.features)
    assert set(cpu.features) <= set(cpu.checked)
    doc = cpu.to_dict()
    assert doc["isa_class"] == cpu.isa_class and json.loads(json.dumps(doc)) == doc


@needs_qemu
@pytest.mark.parametrize(
    ("model", "expected", "absent"),
    [("Haswell-v4", "x86-64-avx2", "avx512f"), ("Nehalem-v2", "x86-64-sse4.2", "avx")],
)
def test_an_emulated_cpu_is_seen_as_its_own_class(model: str, expected: str, absent: str) -> None:
    if detect_cpu().arch != "x86-64":
        pytest.skip("x86-64 CPU models run this machine's Python: an x86-64 host only")
    code = "import json; from benchmarks.cpu import detect_cpu; print(json.dumps(detect_cpu().to_dict()))"
    proc = subprocess.run(
        [QEMU_X86, "-cpu", model, sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    cpu = json.loads(proc.stdout.strip().splitlines()[-1])
    assert cpu["isa_class"] == expected and absent not in cpu["features"] and absent in cpu["checked"]


def _with_cpu(doc: dict, cls: str) -> dict:
    out = copy.deepcopy(doc)
    features = {"x86-64-avx2": ("sse4.2", "avx", "avx2", "fma"), "x86-64-avx512-vnni": ("avx512f", "avx512_vnni")}
    cpu = CpuDescription("x86-64", cls, features[cls], features[cls], "cpuid")
    out["environment"]["cpu"] = cpu.to_dict()
    return out


def test_gate_refuses_benches_from_another_cpu_class_unless_told(edgekit, tmp_path: Path) -> None:
    from tests.test_cli import assert_one_line_error

    bench = json.loads(SAVED.read_text())
    (tmp_path / "avx2.bench.json").write_text(json.dumps(_with_cpu(bench, "x86-64-avx2")))
    (tmp_path / "vnni.bench.json").write_text(json.dumps(_with_cpu(bench, "x86-64-avx512-vnni")))
    (tmp_path / "old.bench.json").write_text(json.dumps(bench))  # written before the CPU was recorded
    current, other = str(tmp_path / "avx2.bench.json"), str(tmp_path / "vnni.bench.json")
    refused = edgekit("gate", current, "--baseline", other)
    assert_one_line_error(refused, "x86-64-avx512-vnni", "x86-64-avx2", "--allow-other-cpu")
    assert not (tmp_path / "gate.json").exists()
    allowed = edgekit("gate", current, "--baseline", other, "--allow-other-cpu")
    assert allowed.returncode == 0, allowed.stderr
    gate = json.loads((tmp_path / "gate.json").read_text())
    assert gate["cpu"] == {"current": "x86-64-avx2", "baseline": "x86-64-avx512-vnni", "other_cpu_allowed": True}
    same = edgekit("gate", current, "--baseline", str(tmp_path / "old.bench.json"))
    assert same.returncode == 0, same.stderr  # an older file does not say: compared, as before


def test_reports_name_the_cpu_class_of_each_machine() -> None:
    """The machine card, the merged labels and the recommendation say which CPU class the numbers belong to."""
    from toolkit.reports import build_report, load_run, machine_label, render_html, render_markdown
    from toolkit.run.documents import BenchDocument, dump_document

    saved = SAVED.parent
    avx2, vnni = load_run(saved, name="avx2"), load_run(saved, name="vnni")
    assert avx2.bench is not None and vnni.bench is not None
    avx2.bench = BenchDocument.model_validate(_with_cpu(dump_document(avx2.bench), "x86-64-avx2"))
    vnni.bench = BenchDocument.model_validate(_with_cpu(dump_document(vnni.bench), "x86-64-avx512-vnni"))
    assert "x86-64-avx2" in machine_label(avx2.bench) and "x86-64-avx512-vnni" in machine_label(vnni.bench)
    one = build_report([avx2])
    card = dict(one.runs[0].machine)
    assert card["instruction set"].startswith("x86-64-avx2: sse4.2 avx avx2 fma")
    md = render_markdown(one)
    assert "It holds for x86-64-avx2 CPUs, where it was measured" in md
    html = render_html(build_report([avx2, vnni], kind="merged"))
    assert "holds for <b>x86-64-avx2</b> CPUs" in html and "holds for <b>x86-64-avx512-vnni</b> CPUs" in html
