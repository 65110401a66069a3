"""ssh and scp as the user's own OpenSSH runs them: argv, and one host's calls with one-line errors.

`ssh`/`scp` run as subprocesses, so ~/.ssh/config, keys, agents and ProxyJump work. Always
`-o BatchMode=yes` (never a password prompt) and a connect timeout; `SshSettings.config` is passed
as `-F`, and `EDGEKIT_SSH_OPTIONS` (shlex-split) is added to every call. Prefer the `-o Key=value`
form there: it means the same to ssh and scp (`-p PORT`/`-l USER` are translated for scp).

Copies try, in order, `scp` (OpenSSH 9 speaks SFTP by default), `scp -O` (the legacy protocol, for
servers without an SFTP subsystem: Dropbear, BusyBox and Yocto images) and streaming through
`ssh host 'cat > file'`. The way that worked is remembered per host (and ssh settings) for the
rest of the process, so later copies do not probe again.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from runtimes.errors import last_line
from toolkit.remote.errors import RemoteError

DEFAULT_REMOTE_DIR: Final = "~/.cache/edgekit-remote"
SSH_OPTIONS_ENV: Final = "EDGEKIT_SSH_OPTIONS"
SSH_FAILED: Final = 255  # ssh's own exit code: unreachable, refused, authentication, host key

# `events(host, message)`: progress of one host, for the user (see present.print_host_event).
Events = Callable[[str, str], None]


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
        return cls(
            config=config, options=options, connect_timeout=connect_timeout, remote_dir=remote_dir or DEFAULT_REMOTE_DIR
        )

    def _common(self, options: Sequence[str]) -> list[str]:
        # ssh uses the FIRST value given for an option: BatchMode cannot be overridden, the rest can.
        args = ["-o", "BatchMode=yes"]
        if self.config is not None:
            args += ["-F", str(self.config)]
        args += list(options)
        for option in (f"ConnectTimeout={self.connect_timeout}", "ServerAliveInterval=15", "ServerAliveCountMax=4"):
            args += ["-o", option]
        return args

    def ssh_argv(self, host: str, command: str) -> list[str]:
        return ["ssh", *self._common(self.options), "--", host, command]

    def scp_argv(self, sources: Sequence[str], dest: str, *, legacy: bool = False) -> list[str]:
        """scp's argv; `legacy` adds `-O` (the scp protocol instead of SFTP)."""
        flags = ["-q", "-O"] if legacy else ["-q"]
        return ["scp", *flags, *self._common(_scp_options(self.options)), "--", *sources, dest]


# How copies reach a host: the scp default (SFTP), legacy scp (-O), or a stream through ssh's stdin/stdout.
COPY_MODES: Final = ("scp", "scp-legacy", "stream")
_copy_modes: dict[tuple[str, SshSettings], str] = {}  # per host and settings: the way that worked
_copy_lock = threading.Lock()


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


def scp_host(host: str) -> str:
    """`user@::1` → `user@[::1]` (scp needs brackets around IPv6 addresses)."""
    user, at, name = host.rpartition("@")
    if ":" in name and not name.startswith("["):
        name = f"[{name}]"
    return f"{user}{at}{name}"


def remote_path(path: str) -> str:
    """A remote path for sh, with a leading ~ expanded by the remote shell."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


SAFE_REMOTE_PATH: Final = re.compile(r"^[A-Za-z0-9_./@+,=-]+$")


class SshHost:
    """One host's ssh/scp calls; every failure becomes a one-line RemoteError.

    `root` (the absolute remote dir) and `job` (this run's folder in it) are set by
    `provision.probe`; `cleanup` removes the job folder.
    """

    def __init__(self, host: str, settings: SshSettings, events: Events) -> None:
        self.host = host
        self.settings = settings
        self.events = events
        self.root = ""
        self.job = ""
        self.install_from: str | None = None  # "index" or "wheelhouse" once provision.setup installed

    def note(self, message: str) -> None:
        self.events(self.host, message)

    def _call(
        self, argv: list[str], what: str, *, stdin: str | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        limit = timeout or self.settings.command_timeout
        try:
            return subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=limit,
                check=False,
                stdin=None if stdin is not None else subprocess.DEVNULL,
            )
        except FileNotFoundError as exc:
            raise RemoteError(f"{argv[0]} is not installed here; install the OpenSSH client.") from exc
        except subprocess.TimeoutExpired as exc:
            raise RemoteError(f"{what} took longer than {limit:.0f} s; stopped.") from exc

    def ssh(
        self, script: str, what: str, *, stdin: str | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a POSIX sh script on the host (through `sh -c`, whatever the login shell is)."""
        proc = self._call(
            self.settings.ssh_argv(self.host, f"sh -c {shlex.quote(script)}"), what, stdin=stdin, timeout=timeout
        )
        if proc.returncode == SSH_FAILED:
            during = "" if what == "connecting" else f" while {what}"
            raise RemoteError(f"cannot connect over ssh{during}: {last_line(proc.stderr)}")
        return proc

    @property
    def copy_mode(self) -> str | None:
        """The way copies to this host worked ("scp", "scp-legacy", "stream"), or None before the first copy."""
        with _copy_lock:
            return _copy_modes.get((self.host, self.settings))

    def put(self, local: Path, remote: str, what: str) -> None:
        """Copy a local file to an absolute remote path (scp, else legacy scp, else a stream over ssh)."""
        self._copy(local, remote, what, upload=True)

    def get(self, remote: str, local: Path, what: str) -> None:
        """Copy an absolute remote path to a local file, the same ways as `put`."""
        self._copy(local, remote, what, upload=False)

    def _copy(self, local: Path, remote: str, what: str, *, upload: bool) -> None:
        known = self.copy_mode
        first = ""
        for mode in (known,) if known else COPY_MODES:
            error = self._copy_once(mode, local, remote, what, upload=upload)
            if error is None:
                if known is None:
                    with _copy_lock:
                        _copy_modes[(self.host, self.settings)] = mode
                    if mode != COPY_MODES[0]:
                        way = "scp -O" if mode == "scp-legacy" else "ssh 'cat'"
                        self.note(f"scp failed ({first}); copying with {way} from now on")
                return
            first = first or error
        # Any failure falls through to the next way: scp's message for a missing SFTP subsystem is only
        # "Connection closed", and a real cause (a full disk, a missing folder) fails the stream too.
        verb = "copying" if upload else "fetching"
        where = "to" if upload else "from"
        raise RemoteError(f"{verb} {what} {where} the host failed: {error}")

    def _copy_once(self, mode: str, local: Path, remote: str, what: str, *, upload: bool) -> str | None:
        """One copy the given way; None on success, else the one-line error."""
        if mode == "stream":
            return self._stream(local, remote, what, upload=upload)
        far = f"{scp_host(self.host)}:{remote}"
        sources, dest = ([str(local)], far) if upload else ([far], str(local))
        proc = self._call(self.settings.scp_argv(sources, dest, legacy=mode == "scp-legacy"), what)
        if proc.returncode == 0 and (upload or local.is_file()):
            return None
        return last_line(proc.stderr)

    def _stream(self, local: Path, remote: str, what: str, *, upload: bool) -> str | None:
        """`cat > remote` fed from the local file, or `cat remote` into it (binary, through ssh)."""
        quoted = shlex.quote(remote)
        script = f"cat > {quoted}" if upload else f"cat {quoted}"
        argv = self.settings.ssh_argv(self.host, f"sh -c {shlex.quote(script)}")
        limit = self.settings.command_timeout
        try:
            with open(local, "rb" if upload else "wb") as fh:
                if upload:
                    proc = subprocess.run(argv, stdin=fh, capture_output=True, timeout=limit, check=False)
                else:
                    proc = subprocess.run(
                        argv, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.PIPE, timeout=limit, check=False
                    )
        except subprocess.TimeoutExpired as exc:
            raise RemoteError(f"{what} took longer than {limit:.0f} s; stopped.") from exc
        if proc.returncode == 0:
            return None
        if not upload:
            local.unlink(missing_ok=True)
        return last_line(proc.stderr.decode(errors="replace"))

    def cleanup(self) -> None:
        """Remove this run's job folder on the host (best effort)."""
        if self.job:
            with contextlib.suppress(RemoteError):
                self.ssh(f"rm -rf {shlex.quote(self.job)}", "cleaning up", timeout=self.settings.connect_timeout + 30)
