"""Remote boards: `edgekit verify` or `edgekit bench` on other machines over the user's own OpenSSH.

Per host, in parallel threads (one failing host never stops the others):

1. ssh/scp with the user's config and keys (`ssh.py`);
2. a runtime-only edgekit in the host's `remote_dir`, installed once and reused (`provision.py`;
   the wheel is built locally once per command by `wheel.py`);
3. the work itself in `remote_dir/jobs/<id>/` (removed afterwards): the bundle or run is copied as a
   .tar.gz, edgekit runs there, and its JSON comes back to the local machine with a `remote` field
   naming the host: `<bundle>.remote/<host>/verify.json`, `<bundle>.remote/<host>/bench.json` or
   `<run>/remote/<host>/bench.json` (`remote_output_root`; the report reads them with `remote_results`).
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from runtimes.errors import last_line
from toolkit.bundles.archive import archive_stem, is_archive, write_tar
from toolkit.errors import ToolkitError
from toolkit.remote.boards import Board, BoardFacts, BoardSkipped, SshBoard
from toolkit.remote.errors import RemoteError
from toolkit.remote.extras import bundle_extras
from toolkit.remote.provision import run_call, run_edgekit
from toolkit.remote.ssh import Events, SshHost, SshSettings

if TYPE_CHECKING:
    from toolkit.run.documents import BenchDocument, Document, VerifyDocument
    from toolkit.steps.bench_settings import BenchSettings

    D = TypeVar("D", bound=Document)

REMOTE_SUFFIX: Final = ".remote"  # <bundle>.remote/<host>/… beside a bundle
RUN_REMOTE_DIR: Final = "remote"  # <run>/remote/<host>/… inside a run directory
EXIT_THRESHOLD: Final = 3  # edgekit's exit code for a mismatch or an exceeded gate: the host ran


class RemoteFailed(ToolkitError):
    """Some hosts failed (see `results`); the others' JSON files were fetched (exit 1)."""

    def __init__(
        self, message: str, results: list[HostResult], documents: dict[str, BenchDocument] | None = None
    ) -> None:
        super().__init__(message)
        self.results = results
        self.documents: dict[str, BenchDocument] = documents or {}  # the hosts that succeeded: their bench.json

    @property
    def paths(self) -> dict[str, Path]:
        return {r.host: r.path for r in self.results if r.path is not None}


@dataclass
class HostResult:
    """What happened on one host (or farm place: `host` is then the place's name).

    `status`: "ok", "threshold" (the command exited 3), "error", or "skipped" (a busy place with `--busy skip`).
    `facts`: what the board's lease adds to the fetched JSON's `remote` section (place, coordinator, acquire time).
    """

    host: str
    status: str
    path: Path | None = None
    error: str | None = None
    setup: str | None = None  # "installed" or "reused"
    setup_seconds: float | None = None
    run_seconds: float | None = None
    seconds: float = 0.0
    acquire_seconds: float | None = None  # a farm place: from the first acquire attempt to holding it
    facts: BoardFacts = field(default_factory=BoardFacts)

    @property
    def exit_code(self) -> int:
        return {"ok": 0, "threshold": EXIT_THRESHOLD, "skipped": 0}.get(self.status, 1)


def exit_code(results: Sequence[HostResult]) -> int:
    """1 if any host could not be reached, set up or run; else 3 if any exceeded a threshold; else 0."""
    codes = {r.exit_code for r in results}
    return 1 if 1 in codes else 3 if 3 in codes else 0


# -- names and places --------------------------------------------------------------------------------
def host_dirname(host: str) -> str:
    """A folder name for a host: `user@board.local:22` → `user@board.local_22`."""
    name = re.sub(r"[^A-Za-z0-9._@-]", "_", host).lstrip(".")
    return name or "host"


def check_hosts(hosts: Sequence[str | Board]) -> list[Board]:
    """The boards (a plain string is an ssh host), refusing empty, option-like or duplicate names (their result
    folders would collide)."""
    seen: dict[str, str] = {}
    boards = [SshBoard(h) if isinstance(h, str) else h for h in hosts]
    for board in boards:
        host = board.name
        if not host or host.startswith("-") or any(c.isspace() for c in host):
            raise RemoteError(f"--remote {host!r} is not a host; pass user@host or a Host alias from ~/.ssh/config.")
        other = seen.get(host_dirname(host))
        if other is not None:
            raise RemoteError(f"{host} is given twice (or names the same folder as {other}); pass it once.")
        seen[host_dirname(host)] = host
    if not boards:
        raise RemoteError("no --remote host given.")
    return boards


def _named(path: Path) -> Path:
    """`.` or `x/..` resolved, so the folder has a name to build `<name>.remote` from."""
    return path.resolve() if path.name in ("", ".", "..") else path


def remote_output_root(target: Path) -> Path:
    """Where per-host results go: `<run>/remote` for a run directory, `<bundle stem>.remote` beside a bundle."""
    from toolkit.bundles.format import BUNDLE_JSON

    target = _named(target)
    if target.is_dir() and not (target / BUNDLE_JSON).is_file():
        return target / RUN_REMOTE_DIR
    name = archive_stem(target) if is_archive(target) else target.name
    return target.parent / f"{name}{REMOTE_SUFFIX}"


@dataclass
class HostDocuments:
    """What was fetched back from one host: its bench.json and verify.json (None: not run there)."""

    bench: BenchDocument | None = None
    verify: VerifyDocument | None = None


def remote_results(target: Path) -> dict[str, HostDocuments]:
    """Fetched results for a run directory or bundle, by host.

    Reads `<target>/remote/<host>/` and `<target stem>.remote/<host>/` (whichever exist); the host is
    the `remote.host` recorded in the file, else the folder name. Unreadable or invalid files are skipped.
    """
    from toolkit.run.documents import BenchDocument, DocumentError, RemoteInfo, VerifyDocument, load_document

    def read(path: Path, kind: type[D]) -> D | None:
        try:
            return load_document(path, kind)
        except DocumentError:
            return None

    def host(remote: RemoteInfo | None, folder: Path) -> str:
        if remote is None:
            return folder.name
        return remote.board or remote.host  # a farm place or inventory entry is named by itself, not its address

    target = _named(target)
    name = archive_stem(target) if is_archive(target) else target.name
    roots = [target / RUN_REMOTE_DIR, target.parent / f"{name}{REMOTE_SUFFIX}"]
    found: dict[str, HostDocuments] = {}
    for root in roots:
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            bench = read(folder / BenchDocument.FILE, BenchDocument)
            if bench is not None:
                found.setdefault(host(bench.remote, folder), HostDocuments()).bench = bench
            verify = read(folder / VerifyDocument.FILE, VerifyDocument)
            if verify is not None:
                found.setdefault(host(verify.remote, folder), HostDocuments()).verify = verify
    return found


# -- running on hosts --------------------------------------------------------------------------------
def _fetch_json(h: SshHost, remote: str, local: Path, extra: dict[str, Any], what: str) -> Path:
    """Copy a JSON file back, add a `remote` section, and write it atomically to `local`."""
    from runtimes.files import write_json_atomic

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


def _send(h: SshHost, archive: Path, what: str) -> str:
    """Copy `archive` into the host's job folder; its remote path."""
    remote = f"{h.job}/{archive.name}"
    h.note(f"copying {archive.name} ({archive.stat().st_size / 1e6:.1f} MB)")
    h.put(archive, remote, what)
    return remote


def _run_and_fetch(
    h: SshHost,
    result: HostResult,
    run: Callable[[], subprocess.CompletedProcess[str]],
    command: str,
    remote_json: str,
    local_json: Path,
    extra: dict[str, Any],
) -> None:
    """`run()` the command on the host, then fetch `remote_json` with the run's facts in its `remote` section.

    Exit 0 is "ok", 3 "threshold" (the command ran; the JSON comes back either way); anything else
    is a RemoteError carrying the host's `error:` line.
    """
    h.note(f"running edgekit {command}")
    started, started_unix = time.perf_counter(), time.time()
    proc = run()
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, EXIT_THRESHOLD):
        raise RemoteError(f"edgekit {command} failed on the host: {last_line(proc.stderr, prefer='error:')}")
    facts = {
        "command": command,
        **extra,
        "exit_code": proc.returncode,
        "setup": result.setup,
        "setup_seconds": round(result.setup_seconds or 0, 3),
        "seconds": round(seconds, 3),
        "started_unix": round(started_unix, 3),
        "finished_unix": round(time.time(), 3),
        "install_from": h.install_from,
        "copy_mode": h.copy_mode,
        **result.facts.to_json(),
    }
    result.path = _fetch_json(h, remote_json, local_json, facts, local_json.name)
    result.status = "ok" if proc.returncode == 0 else "threshold"


JobFn = Callable[[SshHost, HostResult], None]


def _run_hosts(
    hosts: Sequence[str | Board],
    settings: SshSettings,
    job: JobFn,
    events: Events | None,
    *,
    max_parallel: int = 16,
    offline: bool = False,
    need_full: bool = False,
    extras: Sequence[str] = (),
) -> list[HostResult]:
    """Build the wheel once, then set up each host and run `job` there, in parallel; results in host order.

    `offline`: install the hosts' dependencies from wheelhouses built here (`provision.setup`).
    `need_full`: refuse hosts that take only the TFLite-only install (32-bit ARM; `bench`).
    `extras`: edgekit extras the job needs (("openvino",): a bundle with an OpenVINO IR).
    Each board is leased around its set-up and job (`boards.Board.lease`): a farm place is acquired first
    (waiting or skipped when busy) and released afterwards, whatever happened."""
    from runtimes.files import sha256_file
    from toolkit.remote.provision import host_wheel, setup

    boards = check_hosts(hosts)
    for tool in ("ssh", "scp"):
        if shutil.which(tool) is None:
            raise RemoteError(f"{tool} is not on PATH; install the OpenSSH client to use --remote.")
    say: Events = events or (lambda host, message: None)  # the API is silent; the CLI passes its printer
    with tempfile.TemporaryDirectory(prefix="edgekit-wheel-") as tmp:
        started = time.perf_counter()
        wheel = host_wheel(Path(tmp))
        sha = sha256_file(wheel)
        say("local", f"{wheel.name} ready (sha256 {sha[:12]}, {time.perf_counter() - started:.1f} s)")

        def one(board: Board) -> HostResult:
            t0 = time.perf_counter()
            result = HostResult(host=board.name, status="error")
            try:
                with board.lease(settings, say) as lease:
                    result.acquire_seconds = lease.acquire_seconds
                    result.facts = lease.facts
                    # Progress is labelled with the board's name (a place), not the address behind it.
                    h = SshHost(lease.host, lease.settings, lambda _host, message: say(board.name, message))
                    try:
                        result.setup, result.setup_seconds = setup(
                            h, wheel, sha, offline=offline, need_full=need_full, extras=extras
                        )
                        run_started = time.perf_counter()
                        job(h, result)
                        result.run_seconds = time.perf_counter() - run_started
                    finally:
                        h.cleanup()
            except BoardSkipped as exc:
                result.status, result.error = "skipped", str(exc)
            except RemoteError as exc:
                result.status, result.error = "error", str(exc)
            except Exception as exc:  # one host's surprise must not stop the others
                result.status, result.error = "error", f"{type(exc).__name__}: {exc}"
            result.seconds = time.perf_counter() - t0
            return result

        with ThreadPoolExecutor(max_workers=max(1, min(len(boards), max_parallel))) as pool:
            try:
                return list(pool.map(one, boards))
            except BaseException:  # Ctrl-C: the pool waits for its threads, so a board still waiting must stop
                for board in boards:
                    board.interrupt()
                raise


# -- verify ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _as_archive(bundle: Path) -> Iterator[Path]:
    """The bundle as a .tar.gz: itself, or a folder packed into a temporary archive."""
    from toolkit.bundles.format import check_bundle_path

    check_bundle_path(bundle)
    if bundle.is_file():
        yield bundle
        return
    with tempfile.TemporaryDirectory(prefix="edgekit-remote-") as tmp:
        archive = Path(tmp) / f"{bundle.name}.tar.gz"
        write_tar(bundle, archive, bundle.name)
        yield archive


def run_remote_verify(
    bundle: Path,
    hosts: Sequence[str | Board],
    settings: SshSettings | None = None,
    *,
    out_root: Path | None = None,
    events: Events | None = None,
    offline: bool = False,
) -> list[HostResult]:
    """`edgekit verify` on each host in parallel; fetch each verify.json to `<out_root>/<host>/verify.json`.

    `out_root` defaults to `remote_output_root(bundle)` (`<bundle stem>.remote`). A host's status is
    "ok" (all artifacts within tolerance), "threshold" (a mismatch: exit 3 there) or "error" (not
    reachable, not set up, or the bundle was refused there: `error` holds the one-line reason).
    `events(host, message)` gets each host's progress (default: dimmed lines on stderr). `offline`
    installs the hosts' dependencies from a wheelhouse built here instead of their package index.
    Raises RemoteError/BundleError only for problems before any host is contacted.
    """
    settings = settings or SshSettings.from_env()
    root = out_root or remote_output_root(bundle)
    with _as_archive(bundle) as archive:

        def job(h: SshHost, result: HostResult) -> None:
            remote_archive = _send(h, archive, "the bundle")
            remote_json = f"{h.job}/verify.json"
            local = root / host_dirname(result.host) / "verify.json"
            args = ["verify", remote_archive, "--out", remote_json]
            _run_and_fetch(h, result, lambda: run_edgekit(h, args, "edgekit verify"), "verify", remote_json, local, {})

        return _run_hosts(hosts, settings, job, events, offline=offline, extras=bundle_extras(bundle))


# -- bench -------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _bench_archive(target: Path, chosen: Sequence[str] = ()) -> Iterator[tuple[Path, str, tuple[str, ...]]]:
    """A .tar.gz of what `edgekit bench` needs from a run or bundle: manifest.json (non-Keras artifacts),
    the artifact files (an IR's .bin too), and parity.json/train.json when present. Yields (archive, folder name
    inside, the edgekit extras the `chosen` artifacts (default: all) need on the host: ("openvino",) for an IR)."""
    from toolkit.bundles.format import open_bundle
    from toolkit.remote.extras import EXTRA_OF_RUNTIME
    from toolkit.run import layout as A
    from toolkit.run.documents import write_document

    if not target.exists():
        raise RemoteError(f"{target} does not exist; pass a run directory or a bundle (folder or .tar.gz).")
    name = archive_stem(target) if is_archive(target) else _named(target).name
    with (
        open_bundle(target) if is_archive(target) else contextlib.nullcontext(target) as src,
        tempfile.TemporaryDirectory(prefix="edgekit-remote-") as tmp,
    ):
        manifest = A.load_manifest(src)
        entries = [e for e in manifest.artifacts if e.format != "keras"]
        if not entries:
            raise RemoteError(f"{target} has no non-Keras artifacts to benchmark on a board; run `edgekit export`.")
        folder = Path(tmp) / name
        for entry in entries:
            A.verified_path(src, entry)  # every file of it, checked against its sha256
            for rel, _sha in entry.files():
                dest = folder / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src / rel, dest)
        runtimes = {e.runtime for e in entries if not chosen or e.name in chosen}
        extras = tuple(sorted({EXTRA_OF_RUNTIME[r] for r in runtimes if r in EXTRA_OF_RUNTIME}))
        write_document(folder / A.MANIFEST_JSON, manifest.model_copy(update={"artifacts": entries}))
        for extra in (A.PARITY_JSON, A.TRAIN_JSON):
            if (src / extra).is_file():
                shutil.copyfile(src / extra, folder / extra)
        archive = Path(tmp) / f"{name}.tar.gz"
        write_tar(folder, archive, name)
        yield archive, name, extras


EXTRACT_SCRIPT: Final = (
    "import sys, tarfile\n"
    "with tarfile.open(sys.argv[1], 'r:gz') as t:\n"
    "    t.extractall(sys.argv[2], **({'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}))\n"
)


def run_remote_bench(
    target: Path,
    hosts: Sequence[str | Board],
    bench: BenchSettings,
    artifacts: Sequence[str] = (),
    settings: SshSettings | None = None,
    *,
    out_root: Path | None = None,
    events: Events | None = None,
    offline: bool = False,
) -> list[HostResult]:
    """`toolkit.bench` with these `BenchSettings` on each host in parallel; fetch bench.json to `<out_root>/<host>/`.

    `target` is a run directory or a bundle (folder or .tar.gz); `out_root` defaults to
    `remote_output_root(target)`. The host gets the API's parameters (`toolkit.api.remote_call`), not a
    command line. Statuses and `offline` as in `run_remote_verify`.
    """
    settings = settings or SshSettings.from_env()
    root = out_root or remote_output_root(target)
    with _bench_archive(target, artifacts) as (archive, name, extras):

        def job(h: SshHost, result: HostResult) -> None:
            remote_archive = _send(h, archive, "the artifacts")
            proc = h.ssh(
                f"cd {shlex.quote(h.root)} && venv/bin/python -c {shlex.quote(EXTRACT_SCRIPT)} "
                f"{shlex.quote(remote_archive)} {shlex.quote(h.job)}",
                "unpacking",
            )
            if proc.returncode != 0:
                raise RemoteError(f"unpacking the artifacts on the host failed: {last_line(proc.stderr)}")
            remote_dir = f"{h.job}/{name}"
            local = root / host_dirname(result.host) / "bench.json"
            sent = bench.model_dump(mode="json")
            call = {"run_dir": remote_dir, "settings": sent, "artifacts": list(artifacts) or None}
            _run_and_fetch(
                h,
                result,
                lambda: run_call(h, "bench", call, "edgekit bench"),
                "bench",
                f"{remote_dir}/bench.json",
                local,
                {"settings": call["settings"], "artifacts": call["artifacts"]},
            )

        return _run_hosts(hosts, settings, job, events, offline=offline, need_full=True, extras=extras)
