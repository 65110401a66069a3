"""A runtime-only edgekit on a remote host: the venv in `remote_dir`, installed once and then reused.

The edgekit wheel (`wheel.build_wheel`, or `EDGEKIT_REMOTE_WHEEL`) is copied over and installed into
`remote_dir/venv/` with the host's `python3 -m venv` and pip (core dependencies only: no TensorFlow).
`venv/.edgekit-wheel-sha256` records the installed wheel, so later runs skip the install; a lock file
serialises set-ups of one remote dir. `SETUP_SCRIPT` runs on the host with its own python3.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from runtimes.errors import last_line
from toolkit.device.errors import RemoteError
from toolkit.device.ssh import SAFE_REMOTE_PATH, SshHost, remote_path

WHEEL_ENV: Final = "EDGEKIT_REMOTE_WHEEL"  # a prebuilt edgekit wheel to install instead of building one
MARKER: Final = "venv/.edgekit-wheel-sha256"
EXIT_MISSING_COMMAND: Final = 127


def host_wheel(dest: Path) -> Path:
    """The wheel to install on the hosts: `EDGEKIT_REMOTE_WHEEL`, else `wheel.build_wheel(dest)`."""
    from toolkit.device.wheel import build_wheel

    prebuilt = os.environ.get(WHEEL_ENV)
    if not prebuilt:
        return build_wheel(dest)
    path = Path(prebuilt)
    if not (path.is_file() and path.name.startswith("edgekit-") and path.suffix == ".whl"):
        raise RemoteError(f"{WHEEL_ENV}={prebuilt} is not an edgekit-*.whl file.")
    return path


# Runs on the host with its python3 (any 3.x syntax-wise; refuses < 3.10). argv: root, wheel, sha256.
SETUP_SCRIPT: Final = r"""
import fcntl, json, os, shutil, subprocess, sys

def done(status, message="", code=0):
    sys.stdout.write("EDGEKIT-SETUP " + json.dumps({"status": status, "message": message}) + "\n")
    sys.stdout.flush()
    sys.exit(code)

def last_line(text):
    lines = [" ".join(l.split()) for l in text.splitlines() if l.strip()]
    errors = [l for l in lines if l.startswith("ERROR")]
    return (errors or lines or ["no output"])[-1][:300]

def run(cmd):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)

root, wheel, sha = sys.argv[1:4]
if sys.version_info < (3, 10):
    done("error", "python3 on the host is %d.%d; edgekit needs Python 3.10 or newer" % sys.version_info[:2], 2)
os.chdir(root)
with open(".setup.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    marker = os.path.join("venv", ".edgekit-wheel-sha256")
    py = os.path.join("venv", "bin", "python")
    try:
        with open(marker) as fh:
            current = fh.read().strip()
    except OSError:
        current = ""
    if current == sha and os.access(os.path.join("venv", "bin", "edgekit"), os.X_OK):
        done("reused")
    existed = os.access(py, os.X_OK) and run([py, "-c", "import sys"]).returncode == 0
    if not existed:
        shutil.rmtree("venv", ignore_errors=True)
        r = run([sys.executable, "-m", "venv", "venv"])
        if r.returncode != 0:
            shutil.rmtree("venv", ignore_errors=True)
            if "ensurepip" in r.stdout or "No module named venv" in r.stdout:
                done("error", "python3 on the host cannot create a venv (no venv/ensurepip module; on Debian or "
                     "Ubuntu: sudo apt install python3-venv)", 3)
            done("error", "python3 -m venv failed on the host: " + last_line(r.stdout), 3)
    if os.path.exists(marker):
        os.remove(marker)
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q"]
    steps = [pip + [wheel]]
    if existed:  # same version number, new content: replace edgekit itself
        steps.append(pip + ["--no-deps", "--force-reinstall", wheel])
    for cmd in steps:
        r = run(cmd)
        if r.returncode != 0:
            done("error", "pip install failed on the host: " + last_line(r.stdout), 4)
    with open(marker + ".tmp", "w") as fh:
        fh.write(sha + "\n")
    os.replace(marker + ".tmp", marker)
    done("installed")
"""


def probe(h: SshHost) -> str:
    """Create the remote dir and a job dir (sets `h.root`, `h.job`); the installed wheel's sha256 ('' if none)."""
    job = uuid.uuid4().hex[:12]
    where = remote_path(h.settings.remote_dir)
    script = (
        f"set -e; mkdir -p {where}; cd {where}; "
        f'mkdir -p jobs/{job}; echo "dir=$(pwd)"; '
        f'if [ -x venv/bin/edgekit ] && [ -f {MARKER} ]; then echo "marker=$(cat {MARKER})"; fi'
    )
    proc = h.ssh(script, "connecting", timeout=h.settings.connect_timeout * 3 + 30)
    values = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    if proc.returncode != 0 or "dir" not in values:
        raise RemoteError(
            f"cannot create {h.settings.remote_dir} on the host: {last_line(proc.stderr)}; choose --remote-dir"
        )
    h.root = values["dir"].strip()
    if not SAFE_REMOTE_PATH.match(h.root):
        raise RemoteError(f"the remote dir {h.root!r} has spaces or shell characters; choose another --remote-dir.")
    h.job = f"{h.root}/jobs/{job}"
    return values.get("marker", "").strip()


def setup(h: SshHost, wheel: Path, sha: str) -> tuple[str, float]:
    """Install the wheel into the host's venv unless the marker records it; ("installed"|"reused", seconds)."""
    started = time.perf_counter()
    installed = probe(h)
    if installed == sha:
        h.note("edgekit environment up to date (reused)")
        return "reused", time.perf_counter() - started
    first = "" if installed else " (first time: a minute or more)"
    h.note(f"installing edgekit {sha[:12]} into {h.root}/venv{first}")
    remote_wheel = f"{h.job}/{wheel.name}"
    h.put(wheel, remote_wheel, "the edgekit wheel")
    python = shlex.quote(h.settings.python)
    proc = h.ssh(
        f"command -v {python} >/dev/null 2>&1 || exit {EXIT_MISSING_COMMAND}; "
        f"exec {python} - {shlex.quote(h.root)} {shlex.quote(remote_wheel)} {sha}",
        "installing edgekit",
        stdin=SETUP_SCRIPT,
    )
    if proc.returncode == EXIT_MISSING_COMMAND:
        raise RemoteError(f"no {h.settings.python} on the host; install Python 3.10+ with its venv module.")
    reply = [line for line in proc.stdout.splitlines() if line.startswith("EDGEKIT-SETUP ")]
    if not reply:
        raise RemoteError(f"setting up edgekit on the host failed: {last_line(proc.stderr + proc.stdout)}")
    doc = json.loads(reply[-1].split(" ", 1)[1])
    if doc.get("status") == "error" or proc.returncode != 0:
        raise RemoteError(str(doc.get("message") or last_line(proc.stderr)))
    status = str(doc["status"])
    h.note(f"edgekit environment {status} ({time.perf_counter() - started:.1f} s)")
    return status, time.perf_counter() - started


def run_edgekit(h: SshHost, args: Sequence[str], what: str) -> subprocess.CompletedProcess[str]:
    """`edgekit ARGS` with the host's installed edgekit, from the remote dir (after `setup`)."""
    return _run_venv(h, "edgekit", args, what)


def run_call(h: SshHost, function: str, kwargs: dict[str, Any], what: str) -> subprocess.CompletedProcess[str]:
    """The API's `function(**kwargs)` on the host (`python -m toolkit.api.remote_call`), from the remote dir."""
    return _run_venv(h, "python", ["-m", "toolkit.api.remote_call", function, json.dumps(kwargs)], what)


def _run_venv(h: SshHost, program: str, args: Sequence[str], what: str) -> subprocess.CompletedProcess[str]:
    quoted = " ".join(shlex.quote(a) for a in args)
    return h.ssh(f"cd {shlex.quote(h.root)} && COLUMNS=200 exec venv/bin/{program} {quoted}", what)
