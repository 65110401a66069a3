"""A runtime-only edgekit on a remote host: the venv in `remote_dir`, installed once and then reused.

The edgekit wheel (`wheel.build_wheel`, or `EDGEKIT_REMOTE_WHEEL`) is copied over and installed into
`remote_dir/venv/` with the host's `python3 -m venv` and pip (core dependencies only: no TensorFlow).
`venv/.edgekit-wheel-sha256` records the installed wheel, so later runs skip the install; a lock file
serialises set-ups of one remote dir. The set-up itself is `host_install.py`, run on the host with its
own python3 (`_run_setup`).

Before installing, `probe` reads the host's machine, Python, libc, venv module and free space, and
`check_host` refuses in one line what cannot work (Python < 3.10, no venv, 32-bit ARM without Python
3.9/3.10, a full disk), before anything is copied or created. A 32-bit ARM host (armv7l) with Python
3.9 or 3.10 gets the TFLite-only install (`lite.py`): `verify --remote` works there, `bench --remote`
is refused in one line. Dependencies come from the host's index; when its pip cannot
reach one (or with `offline`), from a wheelhouse built here for the host's platform (`wheelhouse.py`).
A bundle holding an OpenVINO IR makes the install `edgekit[openvino]` on a 64-bit host (`extras.py`);
the marker then records `<sha256>+openvino`, and such a venv serves any later job.
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
from toolkit.remote.errors import RemoteError
from toolkit.remote.ssh import SAFE_REMOTE_PATH, SshHost, remote_path
from toolkit.remote.wheelhouse import HostFacts

WHEEL_ENV: Final = "EDGEKIT_REMOTE_WHEEL"  # a prebuilt edgekit wheel to install instead of building one
MARKER: Final = "venv/.edgekit-wheel-sha256"
EXIT_MISSING_COMMAND: Final = 127
MIN_FREE_MB: Final = 500  # the core venv (numpy, onnxruntime, ai-edge-litert, matplotlib…) is ~400 MB
NO_WHEELS_MACHINES: Final = ("armv7l", "armv6l", "armv8l")  # 32-bit ARM: no ai-edge-litert/onnxruntime wheels


def host_wheel(dest: Path) -> Path:
    """The wheel to install on the hosts: `EDGEKIT_REMOTE_WHEEL`, else `wheel.build_wheel(dest)`."""
    from toolkit.remote.wheel import build_wheel

    prebuilt = os.environ.get(WHEEL_ENV)
    if not prebuilt:
        return build_wheel(dest)
    path = Path(prebuilt)
    if not (path.is_file() and path.name.startswith("edgekit-") and path.suffix == ".whl"):
        raise RemoteError(f"{WHEEL_ENV}={prebuilt} is not an edgekit-*.whl file.")
    return path


# `host_install.py` (the set-up program) gets this module name in the host's job folder.
HOST_PROGRAM: Final = "edgekit_host_install"


# The host's Python, libc and venv module, printed as key=value lines by the host's python3 (any 3.x).
FACTS_SCRIPT: Final = (
    "import platform, sys\n"
    "print('python=%d.%d' % sys.version_info[:2])\n"
    "print('libc=' + '-'.join(platform.libc_ver()).strip('-'))\n"
    "try:\n"
    "    import venv, ensurepip\n"
    "    print('venv=yes')\n"
    "except Exception:\n"
    "    print('venv=no')\n"
)


def probe(h: SshHost) -> tuple[str, HostFacts]:
    """Create the remote dir and a job dir (sets `h.root`, `h.job`); the installed wheel's sha256 ('' if none)
    and what the host is (machine, Python, libc, venv, free space), in one ssh call."""
    job = uuid.uuid4().hex[:12]
    where = remote_path(h.settings.remote_dir)
    python = shlex.quote(h.settings.python)
    script = (
        f"set -e; mkdir -p {where}; cd {where}; "
        f'mkdir -p jobs/{job}; echo "dir=$(pwd)"; '
        f'if [ -x venv/bin/edgekit ] && [ -f {MARKER} ]; then echo "marker=$(cat {MARKER})"; fi; set +e; '
        'echo "machine=$(uname -m 2>/dev/null)"; '
        "echo \"free_kb=$(df -Pk . 2>/dev/null | awk 'NR==2 {print $4}')\"; "
        f"if command -v {python} >/dev/null 2>&1; then {python} -c {shlex.quote(FACTS_SCRIPT)}; fi; true"
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
    free_kb = values.get("free_kb", "").strip()
    facts = HostFacts(
        machine=values.get("machine", "").strip(),
        python=values.get("python", "").strip(),
        libc=values.get("libc", "").strip(),
        venv=values.get("venv", "yes").strip() != "no",
        free_mb=int(free_kb) // 1024 if free_kb.isdigit() else None,
    )
    return values.get("marker", "").strip(), facts


def check_host(h: SshHost, facts: HostFacts, *, need_full: bool = False) -> None:
    """Refuse, in one line naming what was found and the way out, a host edgekit cannot be installed on.

    A 32-bit ARM host with Python 3.9/3.10 passes (the TFLite-only install) unless `need_full` (bench).
    Runs before anything is copied or created on the host (only the empty job folder exists, removed
    by `SshHost.cleanup`), so a refused host is left as it was.
    """
    from toolkit.remote import lite

    name = h.settings.python
    if facts.machine in NO_WHEELS_MACHINES:
        if not lite.fits(facts.machine, facts.python):
            found = f" with Python {facts.python}" if facts.python else ""
            raise RemoteError(
                f"{facts.machine} (32-bit ARM){found}: no ai-edge-litert/onnxruntime wheels, and tflite-runtime 2.13 "
                "has armv7l wheels for Python 3.9/3.10 only; use a 64-bit OS, or Python 3.9/3.10 on armv7l "
                "(edgekit then installs TFLite-only: tflite-runtime 2.13 with numpy<2)"
            )
        if need_full:
            raise RemoteError(
                f"{facts.machine} (32-bit ARM) with Python {facts.python}: edgekit installs TFLite-only there, for "
                "`verify --remote`; `bench --remote` needs a 64-bit OS with Python 3.10+"
            )
    if not facts.python:
        raise RemoteError(f"no {name} on the host; install Python 3.10+ with its venv module.")
    major, _, minor = facts.python.partition(".")
    if (int(major), int(minor or 0)) < (3, 10) and not lite.fits(facts.machine, facts.python):
        raise RemoteError(
            f"{name} on the host is Python {facts.python}; edgekit needs Python 3.10 or newer: install "
            "python3.10+ there (e.g. a newer OS image)"
        )
    if not facts.venv:
        raise RemoteError(
            f"{name} {facts.python} on the host has no venv/ensurepip module; install it (Debian or "
            f"Ubuntu: sudo apt install python3-venv)"
        )
    if facts.free_mb is not None and facts.free_mb < MIN_FREE_MB:
        raise RemoteError(
            f"only {facts.free_mb} MB free in {h.root}; edgekit's environment needs about "
            f"{MIN_FREE_MB} MB: free some space or choose --remote-dir on a larger disk"
        )


def setup(
    h: SshHost,
    wheel: Path,
    sha: str,
    *,
    offline: bool = False,
    need_full: bool = False,
    extras: Sequence[str] = (),
) -> tuple[str, float]:
    """Install the wheel into the host's venv unless the marker records it; ("installed"|"reused", seconds).

    `offline`: install the dependencies from a wheelhouse built here (never the host's index).
    `need_full`: refuse a host that only takes the TFLite-only install (32-bit ARM).
    `extras`: edgekit extras the job needs (("openvino",) for a bundle with an IR, `extras.bundle_extras`), added
    where they have wheels (not on 32-bit ARM: verify skips those artifacts there); a venv that has them serves
    a job without them.
    `h.install_from` tells which was used ("index" or "wheelhouse"; None when reused).
    """
    from toolkit.remote import lite
    from toolkit.remote.extras import covers, marker_value, supported

    started = time.perf_counter()
    installed, facts = probe(h)
    wanted = () if lite.fits(facts.machine, facts.python) else supported(extras, facts.machine, facts.libc)
    if need_full or not covers(installed, sha, wanted):
        check_host(h, facts, need_full=need_full)
    if covers(installed, sha, wanted):
        h.note("edgekit environment up to date (reused)")
        return "reused", time.perf_counter() - started
    first = "" if installed else " (first time: a minute or more)"
    profile = ""
    if lite.fits(facts.machine, facts.python):
        profile = f", TFLite-only: {facts.machine} with Python {facts.python}"
    profile += f", with {', '.join(wanted)}" if wanted else ""
    h.note(f"installing edgekit {sha[:12]} into {h.root}/venv{first}{profile}")
    remote_wheel = f"{h.job}/{wheel.name}"
    h.put(wheel, remote_wheel, "the edgekit wheel")
    # Default: the host's own index first. A board with internet then needs no ~100 MB download here and
    # no copy over a slow link, and uses the index or proxy its admin configured; an offline board costs
    # pip's retries (seconds) once, then the wheelhouse. --offline skips straight to the wheelhouse.
    mode = f"full {json.dumps(list(wanted))}" if wanted else "full"
    if lite.fits(facts.machine, facts.python):
        mode = f"lite {json.dumps(list(lite.REQUIREMENTS))}"
    marker = marker_value(sha, wanted)
    doc = None if offline else _run_setup(h, remote_wheel, marker, mode, "")
    if doc is None or doc["status"] == "no-index":
        if doc is not None:
            h.note(f"{doc.get('message')}; installing from a wheelhouse built here")
        doc = _run_setup(h, remote_wheel, marker, mode, _send_wheelhouse(h, wheel, facts, wanted))
        h.install_from = "wheelhouse"
    else:
        h.install_from = "index"
    if doc["status"] in ("error", "no-index"):
        raise RemoteError(str(doc.get("message")))
    status = str(doc["status"])
    h.note(f"edgekit environment {status} ({time.perf_counter() - started:.1f} s)")
    return status, time.perf_counter() - started


def _send_wheelhouse(h: SshHost, wheel: Path, facts: HostFacts, extras: Sequence[str] = ()) -> str:
    """Build (or reuse) the wheelhouse for the host's platform, copy it as one .tar; its remote path."""
    import tarfile
    import tempfile

    from toolkit.remote.wheelhouse import build_wheelhouse

    if not facts.machine or not facts.python:
        raise RemoteError("cannot tell the host's machine and Python version for an offline install.")
    started = time.perf_counter()
    folder, reused = build_wheelhouse(wheel, facts, extras)
    wheels = sorted(folder.glob("*.whl"))
    size = sum(p.stat().st_size for p in wheels) / 1e6
    how = "cached" if reused else f"downloaded in {time.perf_counter() - started:.1f} s"
    h.note(f"wheelhouse for {facts.key}: {len(wheels)} wheels, {size:.0f} MB ({how})")
    with tempfile.TemporaryDirectory(prefix="edgekit-wheelhouse-") as tmp:
        archive = Path(tmp) / "wheelhouse.tar"
        with tarfile.open(archive, "w") as tar:  # wheels are zips already: no compression
            for path in wheels:
                tar.add(path, arcname=path.name)
        remote = f"{h.job}/wheelhouse.tar"
        h.put(archive, remote, "the wheelhouse")
    return remote


def _run_setup(h: SshHost, remote_wheel: str, marker: str, mode: str, wheelhouse: str) -> dict[str, Any]:
    """`host_install.py` on the host: sent over ssh into the job folder and run there with the host's python3
    (`python3 -m edgekit_host_install ...`: edgekit is not installed yet); its reply ({"status", "message"})."""
    from importlib.resources import files

    program = files("toolkit.remote").joinpath("host_install.py").read_text(encoding="utf-8")
    python = shlex.quote(h.settings.python)
    args = " ".join(shlex.quote(a) for a in (h.root, remote_wheel, marker, mode, wheelhouse) if a)
    proc = h.ssh(
        f"command -v {python} >/dev/null 2>&1 || exit {EXIT_MISSING_COMMAND}; cd {shlex.quote(h.job)} && "
        f"cat > {HOST_PROGRAM}.py && exec {python} -m {HOST_PROGRAM} {args}",
        "installing edgekit",
        stdin=program,
    )
    if proc.returncode == EXIT_MISSING_COMMAND:
        raise RemoteError(f"no {h.settings.python} on the host; install Python 3.10+ with its venv module.")
    reply = [line for line in proc.stdout.splitlines() if line.startswith("EDGEKIT-SETUP ")]
    if not reply:
        raise RemoteError(f"setting up edgekit on the host failed: {last_line(proc.stderr + proc.stdout)}")
    doc: dict[str, Any] = json.loads(reply[-1].split(" ", 1)[1])
    if proc.returncode != 0 and doc.get("status") not in ("error", "no-index"):
        raise RemoteError(last_line(proc.stderr))
    return doc


def run_edgekit(h: SshHost, args: Sequence[str], what: str) -> subprocess.CompletedProcess[str]:
    """`edgekit ARGS` with the host's installed edgekit, from the remote dir (after `setup`)."""
    return _run_venv(h, "edgekit", args, what)


def run_call(h: SshHost, function: str, kwargs: dict[str, Any], what: str) -> subprocess.CompletedProcess[str]:
    """The API's `function(**kwargs)` on the host (`python -m toolkit.api.remote_call`), from the remote dir."""
    return _run_venv(h, "python", ["-m", "toolkit.api.remote_call", function, json.dumps(kwargs)], what)


def _run_venv(h: SshHost, program: str, args: Sequence[str], what: str) -> subprocess.CompletedProcess[str]:
    quoted = " ".join(shlex.quote(a) for a in args)
    return h.ssh(f"cd {shlex.quote(h.root)} && COLUMNS=200 exec venv/bin/{program} {quoted}", what)
