"""Runs on a remote host: install the edgekit wheel into `ROOT/venv` once, or see that it is there already.

    python -m edgekit_host_install ROOT WHEEL SHA256 MODE [WHEELHOUSE.tar]

`toolkit.remote.provision` sends this file over ssh into the job folder as `edgekit_host_install.py`
and runs it there with the host's own python3, before edgekit is installed on the host. So it imports the
standard library only and stays Python 3.9-clean: a 32-bit ARM host runs it with Python 3.9 for the
TFLite-only install (tests/test_board_python.py checks it with vermin).

MODE is "full", "full " + edgekit's extras to add as JSON (`["openvino"]`: a bundle with an OpenVINO IR,
`toolkit.remote.extras`), or "lite " + the TFLite-only requirements as JSON (`toolkit.remote.lite.REQUIREMENTS`):
edgekit without its dependencies, then those requirements as wheels only. SHA256 is what the marker records:
the wheel's sha256 with `+extra` for each extra. With WHEELHOUSE (a .tar of
wheels built on the desktop), it is unpacked beside itself and pip installs with --no-index.

The answer is one stdout line, `EDGEKIT-SETUP {"status": ..., "message": ...}`: "installed" or "reused"
(exit 0), "error" (exit 2: Python too old; 3: no venv; 4: pip failed) or "no-index" (exit 5: pip could not
reach an index, or it has no armv7l wheel; the desktop then sends a wheelhouse).
`venv/.edgekit-wheel-sha256` records the installed wheel; `.setup.lock` serialises set-ups of one ROOT.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tarfile
from typing import NoReturn

PREFIX = "EDGEKIT-SETUP "
MARKER = os.path.join("venv", ".edgekit-wheel-sha256")
PYTHON = os.path.join("venv", "bin", "python")
EDGEKIT = os.path.join("venv", "bin", "edgekit")
# pip's words when it cannot reach an index (connection refused, no DNS, no route, a proxy refusing), or,
# for the TFLite-only install (binary wheels only), when the index has no armv7l wheel (PyPI has no numpy).
OFFLINE = (
    "No matching distribution found",
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "ProxyError",
    "ConnectTimeoutError",
    "Max retries exceeded",
    "Could not fetch URL",
)


def done(status: str, message: str = "", code: int = 0) -> NoReturn:
    """Print the one answer line the desktop reads, and exit."""
    sys.stdout.write(PREFIX + json.dumps({"status": status, "message": message}) + "\n")
    sys.stdout.flush()
    sys.exit(code)


def last_line(text: str) -> str:
    """The last `ERROR` line of pip's output (else its last line), whitespace squeezed, at most 300 characters."""
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["no output"])[-1][:300]


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def installed(sha: str) -> bool:
    """Whether the venv holds the wheel with this sha256 (the marker says so and `edgekit` is there)."""
    try:
        with open(MARKER) as fh:
            current = fh.read().strip()
    except OSError:
        current = ""
    return current == sha and os.access(EDGEKIT, os.X_OK)


def make_venv() -> bool:
    """Create the venv unless a working one is there; whether one was there."""
    if os.access(PYTHON, os.X_OK) and run([PYTHON, "-c", "import sys"]).returncode == 0:
        return True
    shutil.rmtree("venv", ignore_errors=True)
    r = run([sys.executable, "-m", "venv", "venv"])
    if r.returncode != 0:
        shutil.rmtree("venv", ignore_errors=True)
        if "ensurepip" in r.stdout or "No module named venv" in r.stdout:
            done(
                "error",
                "python3 on the host cannot create a venv (no venv/ensurepip module; on Debian or "
                "Ubuntu: sudo apt install python3-venv)",
                3,
            )
        done("error", "python3 -m venv failed on the host: " + last_line(r.stdout), 3)
    return False


def pip_steps(
    wheel: str, wheelhouse: str, lite: list[str] | None, existed: bool, extras: list[str] | None = None
) -> list[list[str]]:
    """The pip commands that install the wheel (and its dependencies with `extras`', or the TFLite-only set)."""
    pip = [PYTHON, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q"]
    if wheelhouse:
        folder = os.path.join(os.path.dirname(wheelhouse), "wheelhouse")
        with tarfile.open(wheelhouse) as t:
            t.extractall(folder)
        pip += ["--no-index", "--find-links", folder]
    if lite is not None:  # edgekit without its dependencies, then tflite-runtime, numpy 1 and Rich as wheels only
        return [
            [*pip, "--ignore-requires-python", "--no-deps", "--force-reinstall", wheel],
            [*pip, "--only-binary=:all:", *lite],
        ]
    steps = [[*pip, wheel + ("[" + ",".join(extras) + "]" if extras else "")]]
    if existed:  # same version number, new content: replace edgekit itself
        steps.append([*pip, "--no-deps", "--force-reinstall", wheel])
    return steps


def pip_failed(output: str, wheelhouse: str, lite: list[str] | None) -> NoReturn:
    """Answer "no-index" when pip could not reach an index (and no wheelhouse was used), else "error"."""
    if not wheelhouse and any(word in output for word in OFFLINE[int(lite is None) :]):
        why = "cannot reach a package index"
        if lite is not None and OFFLINE[0] in output:
            why = "finds no armv7l wheel in its index (PyPI has no numpy for 32-bit ARM)"
        done("no-index", "pip on the host " + why + ": " + last_line(output), 5)
    done("error", "pip install failed on the host: " + last_line(output), 4)


def install(root: str, wheel: str, sha: str, mode: str, wheelhouse: str) -> NoReturn:
    lite = json.loads(mode[5:]) if mode.startswith("lite ") else None
    extras = json.loads(mode[5:]) if mode.startswith("full ") else None
    if sys.version_info < (3, 10) and lite is None:
        found = "{}.{}".format(*sys.version_info[:2])
        done("error", f"python3 on the host is {found}; edgekit needs Python 3.10 or newer", 2)
    os.chdir(root)
    with open(".setup.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed(sha):
            done("reused")
        existed = make_venv()
        if os.path.exists(MARKER):
            os.remove(MARKER)
        for cmd in pip_steps(wheel, wheelhouse, lite, existed, extras):
            r = run(cmd)
            if r.returncode != 0:
                pip_failed(r.stdout, wheelhouse, lite)
        with open(MARKER + ".tmp", "w") as fh:
            fh.write(sha + "\n")
        os.replace(MARKER + ".tmp", MARKER)
        done("installed")


def main(argv: list[str]) -> NoReturn:
    root, wheel, sha, mode = argv[:4]
    install(root, wheel, sha, mode, argv[4] if len(argv) > 4 else "")


if __name__ == "__main__":
    main(sys.argv[1:])
