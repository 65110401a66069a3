"""Remote boards: run `edgekit verify` or `edgekit bench` on other machines over the user's own OpenSSH.

Per host, in parallel threads (one failing host never stops the others):

1. `ssh`/`scp` as subprocesses, so ~/.ssh/config, keys, agents and ProxyJump work. Always
   `-o BatchMode=yes` (never a password prompt) and a connect timeout; `SshSettings.config` is
   passed as `-F`, and `EDGEKIT_SSH_OPTIONS` (shlex-split) is added to every call. Prefer the
   `-o Key=value` form there: it means the same to ssh and scp (`-p PORT`/`-l USER` are translated).
2. A runtime-only environment on the host in `remote_dir` (default `~/.cache/edgekit-remote`): the
   edgekit wheel is built locally once per command (reproducibly, so its sha256 identifies the
   source), copied over, and installed into `venv/` with the host's `python3 -m venv` and pip (core
   dependencies only: no TensorFlow). `venv/.edgekit-wheel-sha256` records the installed wheel, so
   later runs skip the install. A lock file serialises set-ups of one remote dir.
3. The work itself in `remote_dir/jobs/<id>/` (removed afterwards): the bundle or run is copied as a
   .tar.gz, edgekit runs there, and its JSON comes back to the local machine with a `remote` field
   naming the host: `<bundle>.remote/<host>/verify.json`, `<bundle>.remote/<host>/bench.json` or
   `<run>/remote/<host>/bench.json` (`remote_output_root`, `remote_results`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from rich.markup import escape

from toolkit.errors import ToolkitError

DEFAULT_REMOTE_DIR: Final = "~/.cache/edgekit-remote"
SSH_OPTIONS_ENV: Final = "EDGEKIT_SSH_OPTIONS"
WHEEL_ENV: Final = "EDGEKIT_REMOTE_WHEEL"  # a prebuilt edgekit wheel to install instead of building one
CACHE_ENV: Final = "EDGEKIT_CACHE_DIR"  # local cache of built wheels (default: $XDG_CACHE_HOME/edgekit or ~/.cache)
REMOTE_SUFFIX: Final = ".remote"  # <bundle>.remote/<host>/… beside a bundle
RUN_REMOTE_DIR: Final = "remote"  # <run>/remote/<host>/… inside a run directory
MARKER: Final = "venv/.edgekit-wheel-sha256"
# What the wheel is built from (as tests/test_core_install.py does): a copy, so the tree is left clean.
WHEEL_SOURCES: Final = ("pyproject.toml", "README.md", "toolkit", "exporters", "runtimes", "benchmarks")
# Any fixed time makes the wheel reproducible, so its sha256 identifies the source (1980-01-01: the zip minimum).
SOURCE_DATE_EPOCH: Final = "315532800"
_SAFE_REMOTE_PATH = re.compile(r"^[A-Za-z0-9_./@+,=-]+$")
EXIT_MISSING_COMMAND: Final = 127

Events = Callable[[str, str], None]


class RemoteError(ToolkitError):
    """A host could not be reached or set up, or the remote command failed (one line)."""


class RemoteFailed(ToolkitError):
    """Some hosts failed (see `results`); the others' JSON files were fetched (exit 1)."""

    def __init__(self, message: str, results: list[HostResult]) -> None:
        super().__init__(message)
        self.results = results

    @property
    def paths(self) -> dict[str, Path]:
        return {r.host: r.path for r in self.results if r.path is not None}


@dataclass(frozen=True)
class SshSettings:
    """How to reach hosts. `options` are extra ssh options (e.g. from EDGEKIT_SSH_OPTIONS)."""

    config: Path | None = None
    options: tuple[str, ...] = ()
    connect_timeout: int = 10
    remote_dir: str = DEFAULT_REMOTE_DIR
    python: str = "python3"
    command_timeout: float = 3600.0

    @classmethod
    def from_env(
        cls, config: Path | None = None, remote_dir: str | None = None, connect_timeout: int = 10
    ) -> SshSettings:
        """Settings from the CLI options plus `EDGEKIT_SSH_OPTIONS` (shlex-split)."""
        raw = os.environ.get(SSH_OPTIONS_ENV, "")
        try:
            options = tuple(shlex.split(raw))
        except ValueError as exc:
            raise RemoteError(f"{SSH_OPTIONS_ENV}={raw!r} cannot be split like a shell line ({exc}).") from exc
        if config is not None and not config.is_file():
            raise RemoteError(f"--ssh-config {config} does not exist; pass an ssh client config file.")
        return cls(config=config, options=options, connect_timeout=connect_timeout,
                   remote_dir=remote_dir or DEFAULT_REMOTE_DIR)  # fmt: skip

    def _common(self, options: Sequence[str]) -> list[str]:
        # ssh uses the FIRST value given for an option: BatchMode cannot be overridden, the rest can.
        args = ["-o", "BatchMode=yes"]
        if self.config is not None:
            args += ["-F", str(self.config)]
        args += list(options)
        args += ["-o", f"ConnectTimeout={self.connect_timeout}", "-o", "ServerAliveInterval=15",
                 "-o", "ServerAliveCountMax=4"]  # fmt: skip
        return args

    def ssh_argv(self, host: str, command: str) -> list[str]:
        return ["ssh", *self._common(self.options), "--", host, command]

    def scp_argv(self, sources: Sequence[str], dest: str) -> list[str]:
        return ["scp", "-q", *self._common(_scp_options(self.options)), "--", *sources, dest]


def _scp_options(options: Sequence[str]) -> list[str]:
    """ssh's `-p PORT` is scp's `-P PORT`; ssh's `-l USER` is `-o User=USER` (scp's -l is a bandwidth limit)."""
    out: list[str] = []
    it = iter(options)
    for opt in it:
        if opt == "-p":
            out += ["-P", next(it, "")]
        elif opt.startswith("-p") and opt[2:].isdigit():
            out += ["-P", opt[2:]]
        elif opt == "-l":
            out += ["-o", f"User={next(it, '')}"]
        else:
            out.append(opt)
    return out


@dataclass
class HostResult:
    """What happened on one host. `status`: "ok", "threshold" (the command exited 3) or "error"."""

    host: str
    status: str
    path: Path | None = None
    error: str | None = None
    setup: str | None = None  # "installed" or "reused"
    setup_seconds: float | None = None
    run_seconds: float | None = None
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return {"ok": 0, "threshold": 3}.get(self.status, 1)


def exit_code(results: Sequence[HostResult]) -> int:
    """1 if any host could not be reached, set up or run; else 3 if any exceeded a threshold; else 0."""
    codes = {r.exit_code for r in results}
    return 1 if 1 in codes else 3 if 3 in codes else 0


# -- names and places --------------------------------------------------------------------------------
def host_dirname(host: str) -> str:
    """A folder name for a host: `user@board.local:22` → `user@board.local_22`."""
    name = re.sub(r"[^A-Za-z0-9._@-]", "_", host).lstrip(".")
    return name or "host"


def check_hosts(hosts: Sequence[str]) -> list[str]:
    """The hosts, refusing empty, option-like or duplicate names (their result folders would collide)."""
    seen: dict[str, str] = {}
    for host in hosts:
        if not host or host.startswith("-") or any(c.isspace() for c in host):
            raise RemoteError(f"--remote {host!r} is not a host; pass user@host or a Host alias from ~/.ssh/config.")
        other = seen.get(host_dirname(host))
        if other is not None:
            raise RemoteError(f"--remote {host} is given twice (or names the same folder as {other}); pass it once.")
        seen[host_dirname(host)] = host
    if not hosts:
        raise RemoteError("no --remote host given.")
    return list(hosts)


def _named(path: Path) -> Path:
    """`.` or `x/..` resolved, so the folder has a name to build `<name>.remote` from."""
    return path.resolve() if path.name in ("", ".", "..") else path


def remote_output_root(target: Path) -> Path:
    """Where per-host results go: `<run>/remote` for a run directory, `<bundle stem>.remote` beside a bundle."""
    from toolkit.bundle import BUNDLE_JSON, archive_stem, is_archive

    target = _named(target)
    if target.is_dir() and not (target / BUNDLE_JSON).is_file():
        return target / RUN_REMOTE_DIR
    name = archive_stem(target) if is_archive(target) else target.name
    return target.parent / f"{name}{REMOTE_SUFFIX}"


def remote_results(target: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Fetched results for a run directory or bundle: `{host: {"bench": bench.json, "verify": verify.json}}`.

    Reads `<target>/remote/<host>/` and `<target stem>.remote/<host>/` (whichever exist); the host is
    the `remote.host` recorded in the file, else the folder name. Unreadable files are skipped.
    """
    from toolkit.bundle import archive_stem, is_archive

    target = _named(target)
    name = archive_stem(target) if is_archive(target) else target.name
    roots = [target / RUN_REMOTE_DIR, target.parent / f"{name}{REMOTE_SUFFIX}"]
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for root in roots:
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            for kind in ("bench", "verify"):
                path = folder / f"{kind}.json"
                try:
                    doc = json.loads(path.read_text())
                except (OSError, ValueError):
                    continue
                if not isinstance(doc, dict):
                    continue
                host = str((doc.get("remote") or {}).get("host") or folder.name)
                found.setdefault(host, {})[kind] = doc
    return found


# -- the wheel ---------------------------------------------------------------------------------------
def source_root() -> Path:
    """The edgekit source tree this process runs from (needs pyproject.toml beside the packages)."""
    import toolkit

    root = Path(toolkit.__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file():
        raise RemoteError(
            f"edgekit is installed without its source tree ({root} has no pyproject.toml), so no wheel can be built "
            f"for the hosts; install it with `pip install -e .` or set {WHEEL_ENV} to an edgekit wheel."
        )
    return root


def _source_files(root: Path) -> list[Path]:
    files: list[Path] = []
    for name in WHEEL_SOURCES:
        path = root / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and not any(_ignored(part) for part in p.relative_to(root).parts)
            )
    return files


def _ignored(part: str) -> bool:
    return part in ("__pycache__", "build") or part.endswith((".pyc", ".egg-info"))


def source_digest(root: Path) -> str:
    """sha256 over the names, modes and bytes of the files the wheel is built from."""
    import hashlib

    digest = hashlib.sha256()
    for path in _source_files(root):
        digest.update(f"{path.relative_to(root).as_posix()}\0{path.stat().st_mode & 0o111}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def wheel_cache_dir() -> Path:
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit) / "wheels"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgekit" / "wheels"


def build_wheel(dest: Path, source: Path | None = None) -> Path:
    """edgekit's wheel (no dependencies), built reproducibly from a copy of the source into `dest`.

    Reuses a wheel cached under `wheel_cache_dir()/<source digest>/` when the source is unchanged,
    and caches a new one there (best effort). `EDGEKIT_REMOTE_WHEEL` names a prebuilt wheel instead.
    """
    prebuilt = os.environ.get(WHEEL_ENV)
    if prebuilt:
        path = Path(prebuilt)
        if not (path.is_file() and path.name.startswith("edgekit-") and path.suffix == ".whl"):
            raise RemoteError(f"{WHEEL_ENV}={prebuilt} is not an edgekit-*.whl file.")
        return path
    root = source or source_root()
    cache = wheel_cache_dir() / source_digest(root)
    cached = sorted(cache.glob("edgekit-*.whl")) if cache.is_dir() else []
    if len(cached) == 1:
        return cached[0]
    src = dest / "src"
    src.mkdir(parents=True)
    for path in _source_files(root):
        target = src / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["SOURCE_DATE_EPOCH"] = SOURCE_DATE_EPOCH
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--disable-pip-version-check",
         "-w", str(dest / "wheels"), str(src)],
        cwd=dest, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    wheels = sorted((dest / "wheels").glob("edgekit-*.whl")) if proc.returncode == 0 else []
    if len(wheels) != 1:
        raise RemoteError(f"could not build the edgekit wheel for the hosts: {_last_line(proc.stderr + proc.stdout)}")
    with contextlib.suppress(OSError):  # a read-only home only costs a rebuild next time
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{cache.name}.partial-", dir=cache.parent))
        shutil.copy2(wheels[0], partial / wheels[0].name)
        try:
            os.rename(partial, cache)
        except OSError:  # another process cached it first
            shutil.rmtree(partial, ignore_errors=True)
    return wheels[0]


# -- one host ----------------------------------------------------------------------------------------
def _last_line(text: str, prefer: str | None = None) -> str:
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    if prefer:
        picked = [line for line in lines if line.startswith(prefer)]
        if picked:
            return picked[-1][:300]
    return lines[-1][:300] if lines else "no output"


def _remote_path(path: str) -> str:
    """A remote path for sh, with a leading ~ expanded by the remote shell."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


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


class _Host:
    """One host's ssh/scp calls; every failure becomes a one-line RemoteError."""

    def __init__(self, host: str, settings: SshSettings, events: Events) -> None:
        self.host = host
        self.settings = settings
        self.events = events
        self.root = ""  # absolute remote dir, after probe()
        self.job = ""  # absolute remote job dir, after probe()

    def note(self, message: str) -> None:
        self.events(self.host, message)

    def _call(
        self, argv: list[str], what: str, *, stdin: str | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        limit = timeout or self.settings.command_timeout
        try:
            return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=limit, check=False,
                                  stdin=None if stdin is not None else subprocess.DEVNULL)  # fmt: skip
        except FileNotFoundError as exc:
            raise RemoteError(f"{argv[0]} is not installed here; install the OpenSSH client.") from exc
        except subprocess.TimeoutExpired as exc:
            raise RemoteError(f"{what} took longer than {limit:.0f} s; stopped.") from exc

    def _check_connection(self, proc: subprocess.CompletedProcess[str], what: str) -> None:
        if proc.returncode == 255:  # ssh's own failure: unreachable, refused, authentication, host key
            during = "" if what == "connecting" else f" while {what}"
            raise RemoteError(f"cannot connect over ssh{during}: {_last_line(proc.stderr)}")

    def ssh(
        self, script: str, what: str, *, stdin: str | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a POSIX sh script on the host (through `sh -c`, whatever the login shell is)."""
        proc = self._call(self.settings.ssh_argv(self.host, f"sh -c {shlex.quote(script)}"), what, stdin=stdin,
                          timeout=timeout)  # fmt: skip
        self._check_connection(proc, what)
        return proc

    def put(self, local: Path, remote: str, what: str) -> None:
        proc = self._call(self.settings.scp_argv([str(local)], f"{_scp_host(self.host)}:{remote}"), what)
        if proc.returncode != 0:
            raise RemoteError(f"copying {what} to the host failed: {_last_line(proc.stderr)}")

    def get(self, remote: str, local: Path, what: str) -> None:
        proc = self._call(self.settings.scp_argv([f"{_scp_host(self.host)}:{remote}"], str(local)), what)
        if proc.returncode != 0 or not local.is_file():
            raise RemoteError(f"fetching {what} from the host failed: {_last_line(proc.stderr)}")

    def probe(self) -> str:
        """Create the remote dir and a job dir; return the installed wheel's sha256 ('' if none)."""
        job = uuid.uuid4().hex[:12]
        script = (
            f"set -e; mkdir -p {_remote_path(self.settings.remote_dir)}; cd {_remote_path(self.settings.remote_dir)}; "
            f'mkdir -p jobs/{job}; echo "dir=$(pwd)"; '
            f'if [ -x venv/bin/edgekit ] && [ -f {MARKER} ]; then echo "marker=$(cat {MARKER})"; fi'
        )
        proc = self.ssh(script, "connecting", timeout=self.settings.connect_timeout * 3 + 30)
        values = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
        if proc.returncode != 0 or "dir" not in values:
            raise RemoteError(
                f"cannot create {self.settings.remote_dir} on the host: {_last_line(proc.stderr)}; choose --remote-dir"
            )
        self.root = values["dir"].strip()
        if not _SAFE_REMOTE_PATH.match(self.root):
            raise RemoteError(
                f"the remote dir {self.root!r} has spaces or shell characters; choose another --remote-dir."
            )
        self.job = f"{self.root}/jobs/{job}"
        return values.get("marker", "").strip()

    def setup(self, wheel: Path, sha: str) -> tuple[str, float]:
        """Install the wheel into the host's venv unless the marker records it; ("installed"|"reused", seconds)."""
        started = time.perf_counter()
        installed = self.probe()
        if installed == sha:
            self.note("edgekit environment up to date (reused)")
            return "reused", time.perf_counter() - started
        first = "" if installed else " (first time: a minute or more)"
        self.note(f"installing edgekit {sha[:12]} into {self.root}/venv{first}")
        remote_wheel = f"{self.job}/{wheel.name}"
        self.put(wheel, remote_wheel, "the edgekit wheel")
        python = shlex.quote(self.settings.python)
        proc = self.ssh(
            f"command -v {python} >/dev/null 2>&1 || exit {EXIT_MISSING_COMMAND}; "
            f"exec {python} - {shlex.quote(self.root)} {shlex.quote(remote_wheel)} {sha}",
            "installing edgekit",
            stdin=SETUP_SCRIPT,
        )
        if proc.returncode == EXIT_MISSING_COMMAND:
            raise RemoteError(f"no {self.settings.python} on the host; install Python 3.10+ with its venv module.")
        reply = [line for line in proc.stdout.splitlines() if line.startswith("EDGEKIT-SETUP ")]
        if not reply:
            raise RemoteError(f"setting up edgekit on the host failed: {_last_line(proc.stderr + proc.stdout)}")
        doc = json.loads(reply[-1].split(" ", 1)[1])
        if doc.get("status") == "error" or proc.returncode != 0:
            raise RemoteError(str(doc.get("message") or _last_line(proc.stderr)))
        status = str(doc["status"])
        self.note(f"edgekit environment {status} ({time.perf_counter() - started:.1f} s)")
        return status, time.perf_counter() - started

    def edgekit(self, args: Sequence[str], what: str) -> subprocess.CompletedProcess[str]:
        quoted = " ".join(shlex.quote(a) for a in args)
        return self.ssh(f"cd {shlex.quote(self.root)} && COLUMNS=200 exec venv/bin/edgekit {quoted}", what)

    def cleanup(self) -> None:
        if self.job:
            with contextlib.suppress(RemoteError):
                self.ssh(f"rm -rf {shlex.quote(self.job)}", "cleaning up", timeout=self.settings.connect_timeout + 30)


def _scp_host(host: str) -> str:
    """`user@::1` → `user@[::1]` (scp needs brackets around IPv6 addresses)."""
    user, at, name = host.rpartition("@")
    if ":" in name and not name.startswith("["):
        name = f"[{name}]"
    return f"{user}{at}{name}"


def _fetch_json(h: _Host, remote: str, local: Path, extra: dict[str, Any], what: str) -> Path:
    """Copy a JSON file back, add a `remote` section, and write it atomically to `local`."""
    from exporters.files import write_json_atomic

    local.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgekit-remote-", dir=local.parent) as tmp:
        copy = Path(tmp) / local.name
        h.get(remote, copy, what)
        try:
            doc = json.loads(copy.read_text())
        except (OSError, ValueError) as exc:
            raise RemoteError(f"{what} from the host is not valid JSON ({exc}).") from exc
    doc["remote"] = {"host": h.host, "remote_dir": h.root, **extra}
    write_json_atomic(local, doc)
    return local


def _default_events(host: str, message: str) -> None:
    from toolkit.cli.console import err

    err.print(f"[dim]{escape(host)}:[/] {escape(message)}", highlight=False, soft_wrap=True)


JobFn = Callable[[_Host, HostResult], None]


def _run_hosts(
    hosts: Sequence[str], settings: SshSettings, job: JobFn, events: Events | None, *, max_parallel: int = 16
) -> list[HostResult]:
    """Build the wheel once, then set up each host and run `job` there, in parallel; results in host order."""
    hosts = check_hosts(hosts)
    for tool in ("ssh", "scp"):
        if shutil.which(tool) is None:
            raise RemoteError(f"{tool} is not on PATH; install the OpenSSH client to use --remote.")
    from exporters.files import sha256_file

    say = events or _default_events
    with tempfile.TemporaryDirectory(prefix="edgekit-wheel-") as tmp:
        started = time.perf_counter()
        wheel = build_wheel(Path(tmp))
        sha = sha256_file(wheel)
        say("local", f"{wheel.name} ready (sha256 {sha[:12]}, {time.perf_counter() - started:.1f} s)")

        def one(host: str) -> HostResult:
            t0 = time.perf_counter()
            result = HostResult(host=host, status="error")
            h = _Host(host, settings, say)
            try:
                result.setup, result.setup_seconds = h.setup(wheel, sha)
                run_started = time.perf_counter()
                job(h, result)
                result.run_seconds = time.perf_counter() - run_started
            except RemoteError as exc:
                result.status, result.error = "error", str(exc)
            except Exception as exc:  # one host's surprise must not stop the others
                result.status, result.error = "error", f"{type(exc).__name__}: {exc}"
            finally:
                h.cleanup()
            result.seconds = time.perf_counter() - t0
            return result

        with ThreadPoolExecutor(max_workers=max(1, min(len(hosts), max_parallel))) as pool:
            return list(pool.map(one, hosts))


# -- verify ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _as_archive(bundle: Path) -> Iterator[Path]:
    """The bundle as a .tar.gz: itself, or a folder packed into a temporary archive."""
    from toolkit.bundle import BUNDLE_JSON, BundleError, is_archive, write_tar

    if not bundle.exists():
        raise BundleError(f"bundle {bundle} does not exist; pass a folder or .tar.gz made by `edgekit bundle`.")
    if bundle.is_file():
        if not is_archive(bundle):
            raise BundleError(f"{bundle} is neither a bundle folder nor a .tar.gz; pass what `edgekit bundle` wrote.")
        yield bundle
        return
    if not (bundle / BUNDLE_JSON).is_file():
        raise BundleError(f"{bundle} has no {BUNDLE_JSON}; pass a folder or .tar.gz made by `edgekit bundle`.")
    with tempfile.TemporaryDirectory(prefix="edgekit-remote-") as tmp:
        archive = Path(tmp) / f"{bundle.name}.tar.gz"
        write_tar(bundle, archive, bundle.name)
        yield archive


def run_remote_verify(
    bundle: Path,
    hosts: Sequence[str],
    settings: SshSettings | None = None,
    *,
    out_root: Path | None = None,
    events: Events | None = None,
) -> list[HostResult]:
    """`edgekit verify` on each host in parallel; fetch each verify.json to `<out_root>/<host>/verify.json`.

    `out_root` defaults to `remote_output_root(bundle)` (`<bundle stem>.remote`). A host's status is
    "ok" (all artifacts within tolerance), "threshold" (a mismatch: exit 3 there) or "error" (not
    reachable, not set up, or the bundle was refused there: `error` holds the one-line reason).
    Raises RemoteError/BundleError only for problems before any host is contacted.
    """
    settings = settings or SshSettings.from_env()
    root = out_root or remote_output_root(bundle)
    with _as_archive(bundle) as archive:

        def job(h: _Host, result: HostResult) -> None:
            remote_archive = f"{h.job}/{archive.name}"
            remote_json = f"{h.job}/verify.json"
            h.note(f"copying {archive.name} ({archive.stat().st_size / 1e6:.1f} MB)")
            h.put(archive, remote_archive, "the bundle")
            h.note("running edgekit verify")
            started, started_unix = time.perf_counter(), time.time()
            proc = h.edgekit(["verify", remote_archive, "--out", remote_json], "edgekit verify")
            seconds = time.perf_counter() - started
            if proc.returncode not in (0, 3):
                raise RemoteError(f"edgekit verify failed on the host: {_last_line(proc.stderr, prefer='error:')}")
            extra = {"command": "verify", "exit_code": proc.returncode, "setup": result.setup,
                     "setup_seconds": round(result.setup_seconds or 0, 3), "seconds": round(seconds, 3),
                     "started_unix": round(started_unix, 3), "finished_unix": round(time.time(), 3)}  # fmt: skip
            result.path = _fetch_json(h, remote_json, root / host_dirname(h.host) / "verify.json", extra, "verify.json")
            result.status = "ok" if proc.returncode == 0 else "threshold"

        return _run_hosts(hosts, settings, job, events)


# -- bench -------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _bench_archive(target: Path) -> Iterator[tuple[Path, str]]:
    """A .tar.gz of what `edgekit bench` needs from a run or bundle: manifest.json (non-Keras artifacts),
    the artifact files, and parity.json/train.json when present. Yields (archive, folder name inside)."""
    from exporters.files import write_json_atomic
    from toolkit.run import layout as A
    from toolkit.bundle import archive_stem, is_archive, open_bundle, write_tar

    if not target.exists():
        raise RemoteError(f"{target} does not exist; pass a run directory or a bundle (folder or .tar.gz).")
    name = archive_stem(target) if is_archive(target) else _named(target).name
    with open_bundle(target) if is_archive(target) else contextlib.nullcontext(target) as src, \
            tempfile.TemporaryDirectory(prefix="edgekit-remote-") as tmp:  # fmt: skip
        manifest = A.load_manifest(src)
        entries = [e for e in manifest["artifacts"] if e.get("format") != "keras"]
        if not entries:
            raise RemoteError(f"{target} has no non-Keras artifacts to benchmark on a board; run `edgekit export`.")
        folder = Path(tmp) / name
        for entry in entries:
            path = A.verified_path(src, entry)
            dest = folder / str(entry["path"])
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
        write_json_atomic(folder / A.MANIFEST_JSON, {**manifest, "artifacts": entries})
        for extra in (A.PARITY_JSON, A.TRAIN_JSON):
            if (src / extra).is_file():
                shutil.copyfile(src / extra, folder / extra)
        archive = Path(tmp) / f"{name}.tar.gz"
        write_tar(folder, archive, name)
        yield archive, name


EXTRACT_SCRIPT: Final = (
    "import sys, tarfile\n"
    "with tarfile.open(sys.argv[1], 'r:gz') as t:\n"
    "    t.extractall(sys.argv[2], **({'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}))\n"
)


def run_remote_bench(
    target: Path,
    hosts: Sequence[str],
    bench_args: Sequence[str] = (),
    settings: SshSettings | None = None,
    *,
    out_root: Path | None = None,
    events: Events | None = None,
) -> list[HostResult]:
    """`edgekit bench <dir> <bench_args>` on each host in parallel; fetch bench.json to `<out_root>/<host>/`.

    `target` is a run directory or a bundle (folder or .tar.gz); `out_root` defaults to
    `remote_output_root(target)`. `bench_args` are passed as they are (e.g. ["-b", "1", "--quick"]);
    local paths such as --baseline mean nothing on the host. Statuses as in `run_remote_verify`.
    """
    settings = settings or SshSettings.from_env()
    root = out_root or remote_output_root(target)
    with _bench_archive(target) as (archive, name):

        def job(h: _Host, result: HostResult) -> None:
            remote_archive = f"{h.job}/{archive.name}"
            remote_dir = f"{h.job}/{name}"
            h.note(f"copying {archive.name} ({archive.stat().st_size / 1e6:.1f} MB)")
            h.put(archive, remote_archive, "the artifacts")
            proc = h.ssh(
                f"cd {shlex.quote(h.root)} && venv/bin/python -c {shlex.quote(EXTRACT_SCRIPT)} "
                f"{shlex.quote(remote_archive)} {shlex.quote(h.job)}",
                "unpacking",
            )
            if proc.returncode != 0:
                raise RemoteError(f"unpacking the artifacts on the host failed: {_last_line(proc.stderr)}")
            h.note(f"running edgekit bench {' '.join(bench_args)}".rstrip())
            started, started_unix = time.perf_counter(), time.time()
            proc = h.edgekit(["bench", remote_dir, *bench_args], "edgekit bench")
            seconds = time.perf_counter() - started
            if proc.returncode not in (0, 3):
                raise RemoteError(f"edgekit bench failed on the host: {_last_line(proc.stderr, prefer='error:')}")
            extra = {"command": "bench", "args": list(bench_args), "exit_code": proc.returncode,
                     "setup": result.setup, "setup_seconds": round(result.setup_seconds or 0, 3),
                     "seconds": round(seconds, 3),
                     "started_unix": round(started_unix, 3), "finished_unix": round(time.time(), 3)}  # fmt: skip
            result.path = _fetch_json(h, f"{remote_dir}/bench.json", root / host_dirname(h.host) / "bench.json",
                                      extra, "bench.json")  # fmt: skip
            result.status = "ok" if proc.returncode == 0 else "threshold"

        return _run_hosts(hosts, settings, job, events)


def remote_bench(
    target: Path,
    hosts: list[str],
    bench_args: list[str],
    *,
    settings: SshSettings | None = None,
    out_root: Path | None = None,
    events: Events | None = None,
) -> dict[str, Path]:
    """Benchmark on every host; return `{host: fetched bench.json}`.

    Prints one summary line per host. Raises RemoteFailed (a ToolkitError: one line, exit 1) after
    all hosts finished when any failed; its `.paths` / `.results` hold what the others produced.
    """
    results = run_remote_bench(target, hosts, bench_args, settings, out_root=out_root, events=events)
    print_summary(results, "bench")
    failed = [r for r in results if r.status == "error"]
    if failed:
        raise RemoteFailed(
            f"remote bench failed on {len(failed)} of {len(results)} host(s): {', '.join(r.host for r in failed)} "
            "(reasons above)",
            results,
        )
    return {r.host: r.path for r in results if r.path is not None}


def summary_line(result: HostResult, what: str) -> str:
    """One plain-text line for a host: the outcome, timings and where the JSON is, or why it failed."""
    if result.status == "error":
        return f"{result.host}: {result.error}"
    outcome = {"ok": "passed" if what == "verify" else "done", "threshold": "MISMATCH" if what == "verify"
               else "threshold exceeded (exit 3)"}[result.status]  # fmt: skip
    setup = f"environment {result.setup} in {result.setup_seconds or 0:.1f} s"
    return f"{result.host}: {what} {outcome} in {result.run_seconds or 0:.1f} s ({setup}) → {result.path}"


def print_summary(results: Sequence[HostResult], what: str) -> None:
    """One line per host: successes on stdout, failures as `error: <host>: <reason>` on stderr."""
    from rich.markup import escape

    from toolkit.cli.console import err, out

    failed = sum(r.status == "error" for r in results)
    out.print(
        f"[bold]Remote {what}[/]: {len(results) - failed} of {len(results)} host(s) ran"
        + (f", {failed} failed" if failed else ""),
        highlight=False,
    )
    for r in results:
        if r.status == "error":
            err.print(f"[bold red]error:[/] {escape(summary_line(r, what))}", highlight=False, soft_wrap=True)
        elif r.status == "threshold":
            err.print(f"[bold red]{escape(summary_line(r, what))}[/]", highlight=False, soft_wrap=True)
        else:
            out.print(escape(summary_line(r, what)), highlight=False, soft_wrap=True)
