"""The boards a remote command runs on: plain SSH hosts, entries of an inventory file, or farm places.

A `Board` has a `name` (its results folder and label) and a `lease`: a context manager that yields how
to reach it over SSH for as long as the command uses it. A plain host's lease is immediate; a labgrid
place's (`farm.PlaceBoard`) acquires the place first and releases it when the lease ends, whatever
happened. `hosts._run_hosts` holds each lease around the board's set-up and job.

The inventory is for users without a coordinator: one TOML file naming SSH hosts, with optional tags,
so `--inventory boards.toml --farm board=pi5` fans out like `--farm` does over a labgrid farm:

    [boards.pi5-a]
    host = "pi@10.0.0.5"      # user@address or a Host alias from ~/.ssh/config
    port = 22                 # optional
    tags = { board = "pi5" }  # optional

There is no lock there: two people running on one inventory board at once is exactly what the farm prevents.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from toolkit.remote.errors import RemoteError

if TYPE_CHECKING:
    from toolkit.remote.ssh import Events, SshSettings


class BoardSkipped(RemoteError):
    """The board was busy and the user asked to skip busy boards (not a failure: exit 0)."""


@dataclass(frozen=True)
class BoardFacts:
    """What a board's lease adds to the `remote` section of the JSON fetched back (`RemoteInfo`'s fields)."""

    board: str | None = None  # the name results are filed under, when it is not the ssh host
    place: str | None = None
    coordinator: str | None = None
    lock_owner: str | None = None
    tags: dict[str, str] | None = None
    acquire_seconds: float | None = None

    def to_json(self) -> dict[str, object]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Lease:
    """How to reach a board while it is leased: the ssh destination, its settings, and what to record."""

    host: str
    settings: SshSettings
    facts: BoardFacts = field(default_factory=BoardFacts)
    acquire_seconds: float | None = None


class Board(Protocol):
    """A board to run on: `name` files its results; `lease` yields a `Lease` while it is used; `interrupt`
    (Ctrl-C, from the main thread) makes a lease that is still waiting for its board give up at once."""

    @property
    def name(self) -> str: ...

    def lease(self, settings: SshSettings, say: Events) -> AbstractContextManager[Lease]: ...

    def interrupt(self) -> None: ...


def with_port(settings: SshSettings, port: int | None) -> SshSettings:
    """`settings` with `-o Port=N` in front (ssh takes the first value given, so it wins over ~/.ssh/config)."""
    if port is None:
        return settings
    return dataclasses.replace(settings, options=("-o", f"Port={port}", *settings.options))


@dataclass(frozen=True)
class SshBoard:
    """A host reached over the user's OpenSSH: `--remote HOST`, or an inventory entry (`name` ≠ `host`)."""

    host: str
    label: str = ""  # the inventory's name for it; empty: the host itself
    port: int | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.label or self.host

    def interrupt(self) -> None:
        """Nothing to give up: an SSH host's lease does not wait."""

    @contextlib.contextmanager
    def lease(self, settings: SshSettings, say: Events) -> Iterator[Lease]:
        facts = BoardFacts(board=self.label, tags=self.tags) if self.label else BoardFacts()
        yield Lease(self.host, with_port(settings, self.port), facts)


# -- selecting boards by tags --------------------------------------------------------------------------
def parse_tags(filters: Sequence[str], option: str = "--farm") -> dict[str, str]:
    """`["board=pi5", "site=lab2"]` → {"board": "pi5", "site": "lab2"} (every one must match)."""
    tags: dict[str, str] = {}
    for item in filters:
        key, eq, value = item.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise RemoteError(f"{option} {item!r} is not KEY=VALUE; pass a place tag such as {option} board=pi5.")
        tags[key.strip()] = value.strip()
    return tags


def matches(tags: dict[str, str], wanted: dict[str, str]) -> bool:
    return all(tags.get(k) == v for k, v in wanted.items())


# -- the inventory file --------------------------------------------------------------------------------
def _load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10: the same parser as the `tomli` package
        try:
            import tomli as tomllib
        except ImportError:
            raise RemoteError("--inventory on Python 3.10 needs tomli: pip install tomli (3.11 has tomllib).") from None
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise RemoteError(f"--inventory {path} does not exist; pass a TOML file of [boards.NAME] tables.") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RemoteError(f"--inventory {path} is not valid TOML ({exc}).") from None


def load_inventory(path: Path) -> list[SshBoard]:
    """The boards of an inventory file (module docstring), in file order; one-line errors for bad entries."""
    data = _load_toml(path)
    boards = data.get("boards")
    if not isinstance(boards, dict) or not boards:
        raise RemoteError(f'--inventory {path} names no boards; add [boards.NAME] tables with host = "user@address".')
    out = []
    for name, entry in boards.items():
        where = f"--inventory {path}: [boards.{name}]"
        if not isinstance(entry, dict):
            raise RemoteError(f'{where} is not a table; write [boards.{name}] then host = "user@address".')
        unknown = sorted(set(entry) - {"host", "port", "tags"})
        if unknown:
            raise RemoteError(f"{where} has unknown key(s) {', '.join(unknown)}; the keys are host, port and tags.")
        host, port, tags = entry.get("host"), entry.get("port"), entry.get("tags", {})
        if not isinstance(host, str) or not host or host.startswith("-") or any(c.isspace() for c in host):
            raise RemoteError(f'{where} needs host = "user@address" (or a Host alias from ~/.ssh/config).')
        if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536):
            raise RemoteError(f"{where}: port = {port!r} is not a TCP port (1-65535).")
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
            raise RemoteError(f'{where}: tags must be a table of strings, e.g. tags = {{ board = "pi5" }}.')
        out.append(SshBoard(host=host, label=str(name), port=port, tags=dict(tags)))
    return out


def inventory_boards(path: Path, names: Sequence[str] = (), filters: Sequence[str] = ()) -> list[SshBoard]:
    """The inventory's boards named in `names` (`--place`) and/or matching every tag in `filters` (`--farm`);
    all of them when neither is given."""
    boards = load_inventory(path)
    known = {b.name for b in boards}
    missing = [n for n in names if n not in known]
    if missing:
        raise RemoteError(
            f"--place {', '.join(missing)}: not in --inventory {path} (it names {', '.join(sorted(known))})."
        )
    wanted = parse_tags(filters)
    chosen = [b for b in boards if (not names or b.name in names) and matches(b.tags, wanted)]
    if not chosen:
        tags = " ".join(f"{k}={v}" for k, v in wanted.items())
        raise RemoteError(f"no board in --inventory {path} has the tags {tags}; check its tags tables.")
    return chosen


# -- the boards of a command line ----------------------------------------------------------------------
@contextlib.contextmanager
def chosen_boards(
    remote: Sequence[str] = (),
    places: Sequence[str] = (),
    filters: Sequence[str] = (),
    inventory: Path | None = None,
    coordinator: str | None = None,
    busy: str = "wait",
    wait_timeout: float = 600.0,
) -> Iterator[list[str | Board]]:
    """The boards named by `--remote`, `--place`, `--farm`, `--inventory` (and labgrid's `--coordinator`, `--busy`,
    `--wait-timeout`), for as long as the command runs; a farm's watchdog is ended afterwards.

    `--place`/`--farm` select from the inventory when one is given, else from the labgrid coordinator.
    """
    from toolkit.remote.farm import Farm

    chosen: list[str | Board] = list(remote)
    if inventory is not None:
        if coordinator is not None:
            raise RemoteError("--inventory and --coordinator cannot be combined; pass one source of boards.")
        chosen += inventory_boards(inventory, places, filters)
        yield chosen
        return
    if not (places or filters):
        if coordinator is not None:
            raise RemoteError("--coordinator needs --place NAME or --farm KEY=VALUE to say which places to use.")
        yield chosen
        return
    if busy not in ("wait", "skip"):
        raise RemoteError(f"--busy {busy!r}: pass wait or skip.")
    farm = Farm.from_env(coordinator, busy="skip" if busy == "skip" else "wait", wait_timeout=wait_timeout)
    try:
        chosen += farm.select(places, filters)
        yield chosen
    finally:
        farm.close()
