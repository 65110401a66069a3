"""A board farm on labgrid: places acquired exclusively, reached over SSH, released whatever happens.

`--place NAME` / `--farm KEY=VALUE` name places of a labgrid coordinator (`--coordinator`, else
`LG_COORDINATOR`, else 127.0.0.1:20408). Each place's lease (`PlaceBoard.lease`, held by `hosts._run_hosts`
around the board's set-up and job):

1. acquire it with `labgrid-client acquire` as `HOST:edgekit-PID/USER` (`Farm.owner`; `LG_USERNAME` and
   `LG_HOSTNAME` are honoured for USER and HOST, as labgrid does). A place another user or process holds is
   waited for (one line naming the holder, up to `wait_timeout`) or skipped (`busy="skip"`); it is never
   released or kicked. A place held by this user's own plain `HOST/USER` (acquired by hand with
   labgrid-client) is used as it is and left acquired. A place held by an edgekit of this host and user
   whose process is gone (a crash, kill -9, a reboot) is stale: it is released from that exact owner first;
2. read its `NetworkService` resource (address, username, port) into the SSH destination;
3. release it with `labgrid-client release-from OWNER` (only if this process still holds it) on success,
   on error and on Ctrl-C. A watchdog process (`farm_helper watch`, in its own session so Ctrl-C and
   kill -9 of edgekit do not reach it) holds the list of acquired places and releases them from the same
   owner when edgekit's end closes its stdin: labgrid's coordinator itself keeps a place acquired when its
   client disconnects.

The labgrid calls are subprocesses (`labgrid-client`, and `farm_helper state` for a JSON view of the places):
see `farm_helper.py` for why.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, Literal

from runtimes.errors import last_line
from toolkit.remote.boards import BoardFacts, BoardSkipped, Lease, matches, parse_tags, with_port
from toolkit.remote.errors import RemoteError

if TYPE_CHECKING:
    from toolkit.remote.ssh import Events, SshSettings

COORDINATOR_ENV: Final = "LG_COORDINATOR"
DEFAULT_COORDINATOR: Final = "127.0.0.1:20408"
SSH_RESOURCE: Final = "NetworkService"
OWNER_TAG: Final = ":edgekit-"  # HOST:edgekit-PID is the host part of the owner edgekit acquires as
POLL_SECONDS: Final = 2.0
CALL_TIMEOUT: Final = 60.0
Busy = Literal["wait", "skip"]


@dataclass(frozen=True)
class NetworkService:
    """labgrid's SSH-reachable board resource: where edgekit's ssh goes."""

    address: str
    username: str
    port: int | None = None

    @property
    def host(self) -> str:
        return f"{self.username}@{self.address}" if self.username else self.address


@dataclass(frozen=True)
class PlaceState:
    """One place as the coordinator sees it (`farm_helper state`)."""

    name: str
    tags: dict[str, str]
    acquired: str | None  # "HOST/USER" of the holder
    resources: tuple[dict[str, Any], ...] = ()

    def network_service(self) -> NetworkService | None:
        for r in self.resources:
            if r.get("cls") == SSH_RESOURCE:
                params = r.get("params") or {}
                port = params.get("port")
                return NetworkService(
                    address=str(params.get("address", "")),
                    username=str(params.get("username", "")),
                    port=int(port) if port not in (None, "", 22) else None,
                )
        return None

    def ssh_available(self) -> bool:
        return any(r.get("cls") == SSH_RESOURCE and r.get("avail") for r in self.resources)


def labgrid_client() -> str:
    """`labgrid-client` beside this Python (the `farm` extra), else on PATH; a one-line error without it."""
    beside = Path(sys.executable).parent / "labgrid-client"
    if beside.is_file():
        return str(beside)
    found = shutil.which("labgrid-client")
    if found is None:
        raise RemoteError("--place/--farm need labgrid; install it with: pip install 'edgekit[farm]'")
    return found


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


@dataclass
class Farm:
    """A coordinator and who edgekit acquires as there; `places()` reads its state, `board()` makes a lease."""

    coordinator: str
    busy: Busy = "wait"
    wait_timeout: float = 600.0
    user: str = field(default_factory=lambda: os.environ.get("LG_USERNAME") or getpass.getuser())
    hostname: str = field(default_factory=lambda: os.environ.get("LG_HOSTNAME") or socket.gethostname())
    client: str = field(default_factory=labgrid_client)
    _watchdog: subprocess.Popen[str] | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _interrupted: threading.Event = field(default_factory=threading.Event, init=False, repr=False)

    @classmethod
    def from_env(cls, coordinator: str | None = None, *, busy: Busy = "wait", wait_timeout: float = 600.0) -> Farm:
        address = coordinator or os.environ.get(COORDINATOR_ENV) or DEFAULT_COORDINATOR
        return cls(coordinator=address, busy=busy, wait_timeout=wait_timeout)

    # -- who we are --------------------------------------------------------------------------------------
    @property
    def owner(self) -> str:
        """The owner this process acquires as: `HOST:edgekit-PID/USER` (labgrid's `host/user` form)."""
        return f"{self.hostname}{OWNER_TAG}{os.getpid()}/{self.user}"

    @property
    def plain_owner(self) -> str:
        """This user's own labgrid-client identity (`HOST/USER`): places held so are used, never released."""
        return f"{self.hostname}/{self.user}"

    def stale(self, holder: str) -> bool:
        """True when `holder` is an edgekit of this host and user whose process has ended."""
        m = re.fullmatch(re.escape(self.hostname + OWNER_TAG) + r"(\d+)/" + re.escape(self.user), holder)
        return m is not None and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1)))

    # -- labgrid calls ---------------------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            COORDINATOR_ENV: self.coordinator,
            "LG_HOSTNAME": self.hostname + OWNER_TAG + str(os.getpid()),
            "LG_USERNAME": self.user,
        }

    def call(self, place: str, *args: str) -> subprocess.CompletedProcess[str]:
        """`labgrid-client -x COORDINATOR -p PLACE ARGS…` as this process's owner."""
        argv = [self.client, "-x", self.coordinator, "-p", place, *args]
        try:
            return subprocess.run(
                argv,
                env=self._env(),
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                timeout=CALL_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise RemoteError(
                f"labgrid-client {args[0]} {place} got no answer from the coordinator {self.coordinator} "
                f"within {CALL_TIMEOUT:.0f} s."
            ) from None

    def places(self) -> dict[str, PlaceState]:
        """Every place of the coordinator (a one-line error when it cannot be reached)."""
        argv = [sys.executable, "-m", "toolkit.remote.farm_helper", "state", self.coordinator]
        try:
            proc = subprocess.run(
                argv, env=self._env(), capture_output=True, text=True, timeout=CALL_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:
            proc = None
        if proc is None or proc.returncode != 0:
            why = "no answer" if proc is None else last_line(proc.stderr, prefer="error:").removeprefix("error: ")
            raise RemoteError(
                f"cannot read the labgrid coordinator at {self.coordinator} ({why}); start labgrid-coordinator "
                f"or pass --coordinator HOST:PORT (or set {COORDINATOR_ENV})."
            )
        data = json.loads(proc.stdout)
        return {
            name: PlaceState(name, dict(p.get("tags") or {}), p.get("acquired"), tuple(p.get("resources") or ()))
            for name, p in data["places"].items()
        }

    def select(self, names: Sequence[str] = (), filters: Sequence[str] = ()) -> list[PlaceBoard]:
        """The places named in `names` and/or matching every tag in `filters`, as boards to lease."""
        wanted = parse_tags(filters)  # a bad filter is refused before the coordinator is asked
        known = self.places()
        missing = [n for n in names if n not in known]
        if missing:
            have = ", ".join(sorted(known)) or "none"
            raise RemoteError(
                f"--place {', '.join(missing)}: no such place at {self.coordinator} (places: {have}); "
                "create it with labgrid-client -p NAME create."
            )
        chosen = [n for n in (names or sorted(known)) if matches(known[n].tags, wanted)]
        if not chosen:
            tags = " ".join(f"{k}={v}" for k, v in wanted.items())
            raise RemoteError(
                f"no place at {self.coordinator} has the tags {tags}; set them with labgrid-client -p NAME set-tags."
            )
        return [PlaceBoard(self, n, known[n].tags) for n in chosen]

    # -- the watchdog ----------------------------------------------------------------------------------
    def _tell_watchdog(self, line: str) -> None:
        with self._lock:
            if self._watchdog is None or self._watchdog.poll() is not None:
                self._watchdog = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "toolkit.remote.farm_helper",
                        "watch",
                        self.coordinator,
                        self.client,
                        self.owner,
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    text=True,
                    start_new_session=True,  # out of reach of Ctrl-C and of a kill of edgekit's process group
                )
            stdin: IO[str] | None = self._watchdog.stdin
            if stdin is not None:
                with contextlib.suppress(OSError):
                    stdin.write(line + "\n")
                    stdin.flush()

    def close(self) -> None:
        """End the watchdog (every place released by then): close its stdin, wait for it."""
        with self._lock:
            watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None and watchdog.stdin is not None:
            with contextlib.suppress(OSError):
                watchdog.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                watchdog.wait(timeout=CALL_TIMEOUT)

    # -- acquiring and releasing -------------------------------------------------------------------------
    def acquire(self, place: str, say: Events) -> tuple[PlaceState, bool, float]:
        """Hold `place`: (its state, whether edgekit acquired it (False: the user already held it), seconds).

        Raises BoardSkipped (busy, `busy="skip"`) or RemoteError (still busy after `wait_timeout`, or labgrid
        refused for another reason: the place's resources are not exported, the coordinator is gone)."""
        started = time.perf_counter()
        said = ""
        refused_free = False
        reclaimed: set[str] = set()
        while True:
            proc = self.call(place, "acquire")
            if proc.returncode == 0:
                self._tell_watchdog(f"+{place}")
                return self._held_state(place), True, time.perf_counter() - started
            now = self.places().get(place)
            holder = now.acquired if now is not None else None
            if holder is None:  # not held now: released meanwhile (try again), or refused for labgrid's own reason
                if refused_free:
                    reason = last_line(proc.stderr, prefer="error:")
                    raise RemoteError(f"labgrid refused to acquire place {place}: {reason}")
                refused_free = True
                continue
            refused_free = False
            if holder == self.owner:  # acquired, but labgrid-client was interrupted before it said so
                self._tell_watchdog(f"+{place}")
                assert now is not None
                return now, True, time.perf_counter() - started
            if holder == self.plain_owner:
                say(place, f"already acquired by you ({holder}): used as it is and left acquired")
                assert now is not None
                return now, False, time.perf_counter() - started
            if self.stale(holder) and holder not in reclaimed:  # once: a lock that will not go is waited on
                say(place, f"releasing a stale lock of an edgekit that is no longer running ({holder})")
                self.call(place, "release-from", holder)
                reclaimed.add(holder)
                continue
            waited = time.perf_counter() - started
            if self.busy == "skip":
                raise BoardSkipped(f"place {place} is held by {holder}; skipped (--busy skip)")
            if waited >= self.wait_timeout:
                raise RemoteError(
                    f"place {place} is still held by {holder} after {waited:.0f} s; try later, raise --wait-timeout, "
                    "or pass --busy skip."
                )
            if holder != said:
                say(place, f"waiting for place {place}: held by {holder} (up to {self.wait_timeout:.0f} s)")
                said = holder
            if self._interrupted.wait(POLL_SECONDS):
                raise RemoteError(f"interrupted while waiting for place {place} (held by {holder}).")

    def interrupt(self) -> None:
        """Ctrl-C: every `acquire` still waiting gives up at its next poll (within `POLL_SECONDS`)."""
        self._interrupted.set()

    def _held_state(self, place: str) -> PlaceState:
        state = self.places().get(place)
        if state is None:
            raise RemoteError(f"place {place} vanished from the coordinator {self.coordinator} while acquired.")
        return state

    def release(self, place: str, say: Events) -> None:
        """Release `place` if this process still holds it (labgrid's `release-from`: nobody else's lock)."""
        proc = self.call(place, "release-from", self.owner)
        if proc.returncode == 0:
            self._tell_watchdog(f"-{place}")
            return
        with contextlib.suppress(RemoteError):
            now = self.places().get(place)
            if now is None or now.acquired != self.owner:  # released meanwhile (by hand, --kick): nothing to do
                self._tell_watchdog(f"-{place}")
                return
        # the watchdog still lists it and tries again when edgekit ends
        say(place, f"could not release the place now ({last_line(proc.stderr)}); retried when edgekit exits")


@dataclass(frozen=True)
class PlaceBoard:
    """A labgrid place as a board: acquired for the lease, reached through its NetworkService."""

    farm: Farm
    place: str
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.place

    def interrupt(self) -> None:
        self.farm.interrupt()

    @contextlib.contextmanager
    def lease(self, settings: SshSettings, say: Events) -> Iterator[Lease]:
        state, ours, seconds = self.farm.acquire(self.place, say)
        try:
            if ours:
                say(self.place, f"acquired as {self.farm.owner} in {seconds:.1f} s")
            ssh = state.network_service()
            if ssh is None or not ssh.address:
                raise RemoteError(
                    f"place {self.place} has no {SSH_RESOURCE} resource; add one (address, username, port) to its "
                    "exporter's config and match it with labgrid-client -p PLACE add-match '*/*/NetworkService'."
                )
            if not state.ssh_available():
                raise RemoteError(f"place {self.place}: its exporter is offline ({SSH_RESOURCE} not available).")
            facts = BoardFacts(
                board=self.place,
                place=self.place,
                coordinator=self.farm.coordinator,
                lock_owner=self.farm.owner if ours else state.acquired,
                tags=self.tags,
                acquire_seconds=round(seconds, 3),
            )
            yield Lease(ssh.host, with_port(settings, ssh.port), facts, acquire_seconds=seconds)
        finally:
            if ours:
                self.farm.release(self.place, say)
