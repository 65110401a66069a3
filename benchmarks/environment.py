"""Describe the machine a benchmark ran on, so results from different boards can be compared.

Everything here is best effort: a missing `/proc` or `/sys` file, an exotic platform or a broken
runtime install gives None for that field, never an exception. TensorFlow is never imported
(it costs ~2 s and ~500 MB; versions come from package metadata instead).
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from benchmarks.cpu import detect_cpu
from benchmarks.peak import blas_env, blas_env_note
from runtimes import registry

CPUINFO = Path("/proc/cpuinfo")
CPUFREQ_DIR = Path("/sys/devices/system/cpu/cpu0/cpufreq")
DEVICE_TREE_MODEL = Path("/sys/firmware/devicetree/base/model")
THERMAL_DIR = Path("/sys/class/thermal")
VCGENCMD = "vcgencmd"

# Raspberry Pi firmware `vcgencmd get_throttled` bits: 0-3 are the state now, 16-19 whether it
# has happened since boot (documented at raspberrypi.com, "get_throttled").
THROTTLE_BITS: dict[int, str] = {
    0: "under-voltage now",
    1: "arm frequency capped now",
    2: "throttled now",
    3: "soft temperature limit now",
    16: "under-voltage since boot",
    17: "arm frequency capped since boot",
    18: "throttled since boot",
    19: "soft temperature limit since boot",
}
_THROTTLE_NOW_MASK = 0xF

# Arm Ltd (implementer 0x41) core names by "CPU part", for boards whose /proc/cpuinfo has no
# "model name" line (Raspberry Pi, Jetson, most SBCs).
ARM_PARTS: dict[str, str] = {
    "0xd03": "Cortex-A53",
    "0xd04": "Cortex-A35",
    "0xd05": "Cortex-A55",
    "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72",
    "0xd09": "Cortex-A73",
    "0xd0a": "Cortex-A75",
    "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1",
    "0xd0d": "Cortex-A77",
    "0xd40": "Neoverse-V1",
    "0xd41": "Cortex-A78",
    "0xd44": "Cortex-X1",
    "0xd46": "Cortex-A510",
    "0xd47": "Cortex-A710",
    "0xd49": "Neoverse-N2",
    "0xd4f": "Neoverse-V2",
}

# Environment variables that change how many threads a runtime uses behind our back.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")

# Distributions that provide TensorFlow, in the order pip users install them.


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except (OSError, ValueError):
        return None


def _cpuinfo_fields(text: str) -> dict[str, str]:
    """First value of each key in /proc/cpuinfo (all cores of a homogeneous CPU repeat them)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if sep and key and value and key not in fields:
            fields[key] = value
    return fields


def _board_name(fields: dict[str, str]) -> str | None:
    for key in ("Model", "Hardware"):
        if fields.get(key):
            return fields[key]
    text = _read_text(DEVICE_TREE_MODEL)
    if text is None:
        return None
    # The device-tree string is NUL-terminated.
    return text.strip("\x00 \n") or None


def cpu_model() -> str | None:
    """Human-readable CPU name.

    Returns:
        x86: the "model name" line. Arm (also 32-bit, whose "model name" is generic): the board
        ("Model"/"Hardware"/device tree) and the core type from "CPU part", e.g. "Raspberry Pi 4 Model B
        Rev 1.4 (Cortex-A72)". Otherwise
        `platform.processor()`, or None when nothing is known.
    """
    text = _read_text(CPUINFO)
    fields = _cpuinfo_fields(text) if text else {}
    # 32-bit Arm kernels print a generic "ARMv7 Processor rev 4 (v7l)": the board and core say more.
    if fields.get("model name") and not fields["model name"].startswith("ARMv"):
        return fields["model name"]
    part = fields.get("CPU part", "").lower()
    core = ARM_PARTS.get(part) if fields.get("CPU implementer", "").lower() == "0x41" else None
    if part and core is None:
        core = f"CPU part {part}"
    board = _board_name(fields)
    if board and core:
        return f"{board} ({core})"
    if board or core:
        return board or core
    return platform.processor() or None


def _read_int(path: Path) -> int | None:
    text = _read_text(path)
    try:
        return int(text.strip()) if text else None
    except ValueError:
        return None


def _khz_to_mhz(value: int | None) -> float | None:
    return None if value is None else value / 1000.0


def cpu_frequency() -> dict[str, object]:
    """cpufreq state of cpu0 (None where the kernel does not expose it, e.g. most VMs).

    Returns:
        `cpu_governor` (e.g. "performance", "ondemand"), `cpu_freq_cur_mhz`, `cpu_freq_min_mhz`,
        `cpu_freq_max_mhz` (the governor's limits) and `cpu_freq_hw_max_mhz` (the hardware's).
    """
    governor = _read_text(CPUFREQ_DIR / "scaling_governor")
    return {
        "cpu_governor": (governor.strip() or None) if governor else None,
        "cpu_freq_cur_mhz": _khz_to_mhz(_read_int(CPUFREQ_DIR / "scaling_cur_freq")),
        "cpu_freq_min_mhz": _khz_to_mhz(_read_int(CPUFREQ_DIR / "scaling_min_freq")),
        "cpu_freq_max_mhz": _khz_to_mhz(_read_int(CPUFREQ_DIR / "scaling_max_freq")),
        "cpu_freq_hw_max_mhz": _khz_to_mhz(_read_int(CPUFREQ_DIR / "cpuinfo_max_freq")),
    }


def available_cores() -> int | None:
    """CPUs this process may run on (its affinity mask), or None where that cannot be asked.

    Returns:
        `len(os.sched_getaffinity(0))` where supported (Linux), else `os.cpu_count()`.
    """
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is not None:
        try:
            return len(getaffinity(0))
        except OSError:
            pass
    return os.cpu_count()


def temperatures() -> dict[str, float]:
    """SoC/CPU temperatures from /sys/class/thermal/thermal_zone*/{type,temp}, in °C.

    Returns:
        `{zone type: °C}` (e.g. `{"cpu-thermal": 51.6}`); a repeated type gets the zone name as a
        suffix (`"x86_pkg_temp/thermal_zone3"`); `{}` where there are no zones (most VMs).
    """
    out: dict[str, float] = {}
    try:
        zones = sorted(THERMAL_DIR.glob("thermal_zone*"), key=lambda p: (len(p.name), p.name))
    except OSError:
        return out
    for zone in zones:
        millideg = _read_int(zone / "temp")
        if millideg is None:  # unreadable zones (some report EINVAL / ENODATA) are skipped
            continue
        kind = (_read_text(zone / "type") or "").strip() or zone.name
        key = kind if kind not in out else f"{kind}/{zone.name}"
        out[key] = millideg / 1000.0
    return out


def decode_throttled(value: int) -> list[str]:
    """Names of the bits set in a `vcgencmd get_throttled` value (see `THROTTLE_BITS`).

    Args:
        value: the integer after `throttled=`.

    Returns:
        Flag names in bit order; unknown bits as "bit N".
    """
    return [THROTTLE_BITS.get(bit, f"bit {bit}") for bit in range(value.bit_length()) if value >> bit & 1]


def throttle_state(timeout_s: float = 2.0) -> dict[str, object]:
    """Raspberry Pi throttling from `vcgencmd get_throttled`, when that tool is on PATH.

    Args:
        timeout_s: give up on vcgencmd after this long.

    Returns:
        `throttled` (True when any "now" condition holds: under-voltage, frequency capped,
        throttled or soft temperature limit; None when unknown), `throttle_flags` (every set bit,
        now and since boot) and `throttled_raw` (e.g. "0x50005", or None).
    """
    unknown: dict[str, object] = {"throttled": None, "throttle_flags": [], "throttled_raw": None}
    exe = shutil.which(VCGENCMD)
    if exe is None:
        return unknown
    try:
        proc = subprocess.run([exe, "get_throttled"], capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.SubprocessError):
        return unknown
    _, sep, raw = proc.stdout.strip().partition("=")
    try:
        value = int(raw.strip(), 0) if sep and proc.returncode == 0 else None
    except ValueError:
        value = None
    if value is None:
        return unknown
    return {
        "throttled": bool(value & _THROTTLE_NOW_MASK),
        "throttle_flags": decode_throttled(value),
        "throttled_raw": raw.strip(),
    }


def runtime_versions() -> dict[str, str | None]:
    """Installed runtime versions by runner name (from package metadata; TensorFlow is not imported).

    Returns:
        `{runner name: "package version" or None}`; `{}` if the registry itself fails.
    """
    try:
        return registry.runtime_versions()
    except Exception:  # a broken runtime install must not stop a benchmark report
        return {}


def _safe(value: object) -> object:
    """Call `value` if callable and swallow any error, so one odd platform call cannot break the report."""
    try:
        return value() if callable(value) else value
    except Exception:
        return None


def capture_environment() -> dict[str, object]:
    """Describe this machine and its software for a benchmark report.

    Never raises: a field that cannot be determined is None.

    Returns:
        A JSON-serialisable dict with `cpu_model`, `cpu` (the instruction-set class and features,
        `benchmarks.cpu.CpuDescription.to_dict`), `machine`, `cores_logical`, `cores_available`,
        `os`, `kernel`, `bitness`, `python`, `python_implementation`, `numpy`, `runtime_versions`,
        `cpu_governor`, `cpu_freq_cur_mhz`, `cpu_freq_min_mhz`, `cpu_freq_max_mhz`,
        `cpu_freq_hw_max_mhz`, `thread_env`, `temperatures_c` (`{thermal zone type: °C}`),
        `throttled` (bool, or None when unknown: only Raspberry Pi firmware reports it),
        `throttle_flags` (list of str, e.g. "under-voltage since boot"), `throttled_raw`,
        `openblas_env` (BLAS variables that are set, e.g. OPENBLAS_CORETYPE), `blas_note` (a warning
        when one of them can slow numpy's BLAS, else None), `hostname` and `timestamp_utc` (ISO 8601).
    """
    freq = _safe(cpu_frequency)
    env: dict[str, object] = {
        "cpu_model": _safe(cpu_model),
        "cpu": _safe(lambda: detect_cpu().to_dict()),
        "machine": _safe(platform.machine),
        "cores_logical": _safe(os.cpu_count),
        "cores_available": _safe(available_cores),
        "os": _safe(platform.platform),
        "kernel": _safe(platform.release),
        "bitness": _safe(lambda: platform.architecture()[0]),
        "python": _safe(platform.python_version),
        "python_implementation": _safe(platform.python_implementation),
        "numpy": np.__version__,
        "runtime_versions": _safe(runtime_versions) or {},
    }
    env.update(
        freq
        if isinstance(freq, dict)
        else dict.fromkeys(
            (
                "cpu_governor",
                "cpu_freq_cur_mhz",
                "cpu_freq_min_mhz",
                "cpu_freq_max_mhz",
                "cpu_freq_hw_max_mhz",
            )
        )
    )
    env["thread_env"] = {name: os.environ[name] for name in THREAD_ENV_VARS if name in os.environ}
    env["temperatures_c"] = _safe(temperatures) or {}
    throttle = _safe(throttle_state)
    env.update(
        throttle if isinstance(throttle, dict) else {"throttled": None, "throttle_flags": [], "throttled_raw": None}
    )
    env["openblas_env"] = _safe(blas_env) or {}
    env["blas_note"] = _safe(blas_env_note)
    env["hostname"] = _safe(socket.gethostname) or _safe(platform.node) or None
    env["timestamp_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return env
