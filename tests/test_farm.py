"""The board farm (`--place`, `--farm`, `--inventory`) against a real labgrid coordinator and exporter.

Nothing is mocked: `labgrid-coordinator` listens on 127.0.0.1, one `labgrid-exporter` exports a
`NetworkService` per board, and the boards are loopback sshds (tests/sshd_helper.py) with edgekit
installed from its wheel into a venv under tmp, as in tests/test_remote.py. "alice" is another user
of the farm: her labgrid-client runs with LG_USERNAME=alice. Places:

    pi-a      tags board=pi, lab=1   sshd alias pia
    pi-b      tags board=pi          sshd alias pib
    pi-down   tags board=down        a port nothing listens on (the board is down)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, ctrl_c_as_from_a_terminal
from tests.labgrid_helper import LabgridFarm, Place, running_farm
from tests.sshd_helper import running_sshd
from toolkit.remote.boards import inventory_boards, load_inventory
from toolkit.remote.errors import RemoteError

ARTIFACTS = ["tflite-fp32", "onnx-int8"]
QUICK_BENCH = ["-a", "tflite-fp32", "-a", "onnx-int8", "-b", "1", "-t", "1", "--quick", "--no-peak"]
ALICE = {"LG_USERNAME": "alice", "LG_HOSTNAME": "alices-laptop"}


def _ports(config: Path) -> dict[str, int]:
    """{alias: port} from the ssh client config sshd_helper wrote."""
    return {m[0]: int(m[1]) for m in re.findall(r"Host (\S+)\n  Port (\d+)", config.read_text())}


@pytest.fixture(scope="module")
def boards(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, int]]]:
    """Two loopback boards (pia, pib) and a dead port; the client config also reaches 127.0.0.1:PORT with the key
    (the places' NetworkService gives an address and a port, not an alias)."""
    tmp = tmp_path_factory.mktemp("sshd")
    with running_sshd(tmp, {"pia": "", "pib": ""}, dead="dead") as config:
        key = tmp / "client_key"
        config.write_text(
            config.read_text() + f"Host 127.0.0.1\n  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
            "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
        )
        yield config, _ports(config)


@pytest.fixture(scope="module")
def farm(boards: tuple[Path, dict[str, int]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabgridFarm]:
    _, ports = boards
    places = [
        Place("pi-a", {"board": "pi", "lab": "1"}, "127.0.0.1", ports["pia"]),
        Place("pi-b", {"board": "pi"}, "127.0.0.1", ports["pib"]),
        Place("pi-down", {"board": "down"}, "127.0.0.1", ports["dead"]),
    ]
    with running_farm(tmp_path_factory.mktemp("labgrid"), places) as running:
        yield running


@pytest.fixture(scope="module")
def remote_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The boards' edgekit folder (one machine behind every place): installed once, then reused."""
    return tmp_path_factory.mktemp("board-home") / "edgekit-remote"


@pytest.fixture(scope="module")
def wheel_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wheel-cache")


@pytest.fixture(scope="module")
def farm_bundle(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from toolkit.bundles.build import build_bundle

    folder, _ = build_bundle(
        small_run, tmp_path_factory.mktemp("desktop") / "bundle", artifact_names=ARTIFACTS, golden=64
    )
    return folder


Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def farm_cli(boards: tuple[Path, dict[str, int]], farm: LabgridFarm, remote_dir: Path, wheel_cache: Path) -> Cli:
    """`edgekit ARGS` in a subprocess with the test sshd's config and the farm's coordinator in LG_COORDINATOR."""
    config, _ = boards

    def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            _argv(config, remote_dir, *args),
            cwd=REPO,
            env=_env(farm, wheel_cache, env),
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        return proc

    return run


def _argv(config: Path, remote_dir: Path, *args: str | Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "toolkit.cli",
        *map(str, args),
        "--ssh-config",
        str(config),
        "--remote-dir",
        str(remote_dir),
    ]


def _env(farm: LabgridFarm, wheel_cache: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "COLUMNS": "200",
        "EDGEKIT_CACHE_DIR": str(wheel_cache),
        "LG_COORDINATOR": farm.address,
        **(extra or {}),
    }
    env.pop("EDGEKIT_SSH_OPTIONS", None)
    for name in ("LG_USERNAME", "LG_HOSTNAME"):
        if name not in (extra or {}):
            env.pop(name, None)
    return env


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _wait_for(condition: Callable[[], bool], seconds: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            pytest.fail(f"{what} did not happen within {seconds:.0f} s")
        time.sleep(0.2)
    return time.monotonic() - started


# -- no coordinator needed ---------------------------------------------------------------------------------
def test_inventory_format_and_its_one_line_errors(tmp_path: Path) -> None:
    inv = tmp_path / "boards.toml"
    inv.write_text(
        '[boards.pi5-a]\nhost = "pi@10.0.0.5"\ntags = { board = "pi5" }\n\n'
        '[boards.x86-box]\nhost = "edge"\nport = 2222\ntags = { board = "x86" }\n'
    )
    assert [(b.name, b.host, b.port) for b in load_inventory(inv)] == [
        ("pi5-a", "pi@10.0.0.5", None),
        ("x86-box", "edge", 2222),
    ]
    assert [b.name for b in inventory_boards(inv, filters=["board=x86"])] == ["x86-box"]
    assert [b.name for b in inventory_boards(inv, names=["pi5-a"])] == ["pi5-a"]
    bad = {
        "[boards.a]\nport = 22\n": "needs host",
        '[boards.a]\nhost = "x"\nport = 70000\n': "is not a TCP port",
        '[boards.a]\nhost = "x"\nuser = "pi"\n': "unknown key(s) user",
        "[boards\n": "is not valid TOML",
        "title = 'lab'\n": "names no boards",
    }
    for text, message in bad.items():
        inv.write_text(text)
        with pytest.raises(RemoteError, match=re.escape(message)):
            load_inventory(inv)
    inv.write_text('[boards.a]\nhost = "x"\ntags = { board = "pi5" }\n')
    with pytest.raises(RemoteError, match=r"no board in --inventory .* has the tags board=pi4"):
        inventory_boards(inv, filters=["board=pi4"])
    with pytest.raises(RemoteError, match="is not KEY=VALUE"):
        inventory_boards(inv, filters=["pi5"])
    with pytest.raises(RemoteError, match="--place b: not in --inventory"):
        inventory_boards(inv, names=["b"])


def test_no_coordinator_is_one_line(edgekit, tmp_path: Path) -> None:
    from tests.sshd_helper import free_port

    bundle = tmp_path / "b"
    bundle.mkdir()
    proc = edgekit("verify", str(bundle), "--place", "pi-a", "--coordinator", f"127.0.0.1:{free_port()}")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (line,) = _error_lines(proc.stderr)
    assert "cannot read the labgrid coordinator at 127.0.0.1:" in line and "--coordinator" in line, line
    assert "Traceback" not in proc.stderr
    refused = {
        ("--coordinator", "127.0.0.1:1"): "--coordinator needs --place NAME or --farm KEY=VALUE",
        ("--farm", "pi5"): "--farm 'pi5' is not KEY=VALUE",  # before any coordinator is asked
        ("--inventory", str(tmp_path / "none.toml")): "does not exist; pass a TOML file",
    }
    for args, message in refused.items():
        proc = edgekit("verify", str(bundle), *args)
        (line,) = _error_lines(proc.stderr)
        assert proc.returncode == 1 and message in line and "Traceback" not in proc.stderr, proc.stderr


# -- a real farm -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_places_run_in_parallel_and_merge_into_one_report(
    farm_cli: Cli, farm: LabgridFarm, farm_bundle: Path, small_run: Path, tmp_path: Path
) -> None:
    run = Path(shutil.copytree(small_run, tmp_path / "run"))
    started = time.perf_counter()
    verify = farm_cli("verify", farm_bundle, "--farm", "board=pi", "--out", run / "remote")
    verify_seconds = time.perf_counter() - started
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "Remote verify: 2 of 2 host(s) ran" in verify.stdout
    started = time.perf_counter()
    bench = farm_cli("bench", run, *QUICK_BENCH, "--farm", "board=pi")
    bench_seconds = time.perf_counter() - started
    assert bench.returncode == 0, bench.stdout + bench.stderr
    assert not _error_lines(verify.stderr + bench.stderr)
    for place in ("pi-a", "pi-b"):
        assert f"{place}: acquired as " in verify.stderr + bench.stderr
        for kind in ("verify", "bench"):
            doc = json.loads((run / "remote" / place / f"{kind}.json").read_text())
            r = doc["remote"]
            assert (r["place"], r["board"], r["coordinator"]) == (place, place, farm.address)
            assert (
                r["host"] == "root@127.0.0.1" and r["lock_owner"].endswith("/root") and ":edgekit-" in r["lock_owner"]
            )
            print(
                f"{kind} on {place}: acquire {r['acquire_seconds']:.1f} s, set-up {r['setup']} "
                f"{r['setup_seconds']:.1f} s, {kind} {r['seconds']:.1f} s"
            )
        assert farm.holder(place) is None  # released after each command
    a, b = (json.loads((run / "remote" / p / "bench.json").read_text())["remote"] for p in ("pi-a", "pi-b"))
    assert a["started_unix"] < b["finished_unix"] and b["started_unix"] < a["finished_unix"]  # in parallel
    print(f"whole fan-out over 2 places: verify {verify_seconds:.1f} s, bench {bench_seconds:.1f} s")

    md = (run / "report.md").read_text()
    assert "## Boards" in md
    for place in ("pi-a", "pi-b"):
        group = md.split(f"### {place}", 1)[1].split("\n### ", 1)[0]
        assert f"labgrid place `{place}`" in group and farm.address in group
        assert "ISA features" in group
        assert "tflite-fp32" in group and "onnx-int8" in group and "pass" in group  # verify beside bench
    html = (run / "report.html").read_text()
    assert 'id="boards"' in html and "pi-a" in html and "pi-b" in html
    _screenshot(run / "report.html", tmp_path)


def _screenshot(report: Path, tmp_path: Path) -> None:
    """Render the report's Boards section in headless Chromium (as tests/test_report.py does): the page's own head
    (inline CSS) with that section alone; `EDGEKIT_FARM_SCREENSHOT=PATH` keeps the image (docs/images/)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is missing (apt-get install chromium)")
        return
    from tests.test_report import CHROMIUM_FLAGS

    html = report.read_text()
    head = html[: html.index("<body")]
    section = re.search(r'<section id="boards">.*?</section>', html, re.S)
    assert section, "no Boards section in report.html"
    page = tmp_path / "boards.html"
    page.write_text(f'{head}<body><main style="max-width:1200px;margin:auto">{section.group(0)}</main></body></html>')
    shot = tmp_path / "farm-report.png"
    proc = subprocess.run(
        [
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1280,700",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    keep = os.environ.get("EDGEKIT_FARM_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)


@pytest.mark.slow
def test_a_place_someone_else_holds_is_never_touched(
    boards, farm_cli: Cli, farm: LabgridFarm, remote_dir: Path, wheel_cache: Path, farm_bundle: Path, tmp_path: Path
) -> None:
    config, _ = boards
    farm.client("-p", "pi-a", "acquire", env=ALICE)
    try:
        skip = farm_cli(
            "verify", farm_bundle, "--place", "pi-a", "--place", "pi-b", "--busy", "skip", "--out", tmp_path / "skip"
        )
        assert skip.returncode == 0, skip.stdout + skip.stderr
        assert "skipped: pi-a: place pi-a is held by alices-laptop/alice; skipped (--busy skip)" in skip.stderr
        assert (tmp_path / "skip" / "pi-b" / "verify.json").is_file()
        assert not (tmp_path / "skip" / "pi-a").exists()
        refuse = farm_cli("verify", farm_bundle, "--place", "pi-a", "--wait-timeout", "3", "--out", tmp_path / "wait")
        assert refuse.returncode == 1, refuse.stdout + refuse.stderr
        assert "waiting for place pi-a: held by alices-laptop/alice" in refuse.stderr
        (line,) = _error_lines(refuse.stderr)
        assert "place pi-a is still held by alices-laptop/alice after" in line, line
        assert farm.holder("pi-a") == "alices-laptop/alice"  # neither released nor kicked
        # Ctrl-C while waiting stops at once (not after --wait-timeout) and leaves alice's lock alone.
        argv = _argv(config, remote_dir, "verify", farm_bundle, "--place", "pi-a", "--wait-timeout", "300")
        waiting = subprocess.Popen(
            argv,
            cwd=REPO,
            env=_env(farm, wheel_cache),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            preexec_fn=ctrl_c_as_from_a_terminal,
        )
        try:
            assert waiting.stderr is not None
            for line in waiting.stderr:
                if "waiting for place pi-a" in line:
                    break
            started = time.monotonic()
            os.killpg(waiting.pid, signal.SIGINT)
            _, rest = waiting.communicate(timeout=60)
        finally:
            if waiting.poll() is None:
                waiting.kill()
        assert waiting.returncode == 130 and time.monotonic() - started < 15 and "Traceback" not in rest, rest
        assert farm.holder("pi-a") == "alices-laptop/alice"
        # The same user on another host is someone else too: edgekit acquires as HOST:edgekit-PID/USER.
        mine = farm_cli("verify", farm_bundle, "--place", "pi-a", "--busy", "skip", env={"LG_USERNAME": "alice"})
        assert mine.returncode == 0 and "skipped" in mine.stderr, mine.stderr
        assert farm.holder("pi-a") == "alices-laptop/alice"
    finally:
        farm.client("-p", "pi-a", "release", env=ALICE)


@pytest.mark.slow
def test_a_busy_place_is_waited_for(
    boards, farm: LabgridFarm, remote_dir: Path, wheel_cache: Path, farm_bundle: Path, tmp_path: Path
) -> None:
    config, _ = boards
    farm.client("-p", "pi-b", "acquire", env=ALICE)
    argv = _argv(
        config, remote_dir, "verify", farm_bundle, "--place", "pi-b", "--wait-timeout", "120", "--out", tmp_path / "r"
    )
    proc = subprocess.Popen(
        argv, cwd=REPO, env=_env(farm, wheel_cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # alice lets go once edgekit says it waits for her
            seen.append(line)
            if "waiting for place pi-b: held by alices-laptop/alice" in line:
                time.sleep(2.0)
                farm.client("-p", "pi-b", "release", env=ALICE)
                break
        out, rest = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = "".join(seen) + rest
    assert proc.returncode == 0, out + stderr
    assert "waiting for place pi-b: held by alices-laptop/alice (up to 120 s)" in stderr
    doc = json.loads((tmp_path / "r" / "pi-b" / "verify.json").read_text())
    assert doc["passed"] and doc["remote"]["acquire_seconds"] >= 2.0
    assert farm.holder("pi-b") is None


@pytest.mark.slow
def test_a_down_board_fails_alone(farm_cli: Cli, farm: LabgridFarm, farm_bundle: Path, tmp_path: Path) -> None:
    proc = farm_cli("verify", farm_bundle, "--place", "pi-down", "--place", "pi-a", "--out", tmp_path / "r")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (line,) = _error_lines(proc.stderr)
    assert line.startswith("error: pi-down: cannot connect over ssh") and "Connection refused" in line, line
    assert json.loads((tmp_path / "r" / "pi-a" / "verify.json").read_text())["passed"]
    assert farm.holder("pi-down") is None and farm.holder("pi-a") is None  # released on error too


@pytest.mark.slow
def test_kill_9_leaves_no_lock(
    boards, farm: LabgridFarm, remote_dir: Path, wheel_cache: Path, farm_bundle: Path, tmp_path: Path
) -> None:
    config, _ = boards
    proc = subprocess.Popen(
        _argv(config, remote_dir, "verify", farm_bundle, "--place", "pi-a", "--out", tmp_path),
        cwd=REPO,
        env=_env(farm, wheel_cache),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: farm.holder("pi-a") == f"{os.uname().nodename}:edgekit-{proc.pid}/root", 120, "acquire")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        seconds = _wait_for(lambda: farm.holder("pi-a") is None, 30, "the watchdog's release")
        print(f"pi-a released {seconds:.1f} s after kill -9 of edgekit")
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
def test_a_stale_lock_of_a_dead_edgekit_is_reclaimed(
    farm_cli: Cli, farm: LabgridFarm, farm_bundle: Path, tmp_path: Path
) -> None:
    # What a reboot leaves (no watchdog survived it): this host and user, an edgekit PID that is not running.
    child = subprocess.Popen(["true"])
    child.wait()
    dead = child.pid
    stale = {"LG_USERNAME": "root", "LG_HOSTNAME": f"{os.uname().nodename}:edgekit-{dead}"}
    farm.client("-p", "pi-b", "acquire", env=stale)
    proc = farm_cli("verify", farm_bundle, "--place", "pi-b", "--out", tmp_path / "r")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (
        f"releasing a stale lock of an edgekit that is no longer running ({stale['LG_HOSTNAME']}/root)" in proc.stderr
    )
    assert farm.holder("pi-b") is None


@pytest.mark.slow
def test_inventory_fans_out_without_labgrid(farm_cli: Cli, boards, farm_bundle: Path, tmp_path: Path) -> None:
    _, ports = boards
    inv = tmp_path / "boards.toml"
    inv.write_text(
        f'[boards.left]\nhost = "root@127.0.0.1"\nport = {ports["pia"]}\ntags = {{ board = "pi" }}\n'
        f'[boards.right]\nhost = "pib"\ntags = {{ board = "pi" }}\n'
        f'[boards.other]\nhost = "dead"\ntags = {{ board = "x86" }}\n'
    )
    proc = farm_cli("verify", farm_bundle, "--inventory", inv, "--farm", "board=pi", "--out", tmp_path / "r")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    docs = {b: json.loads((tmp_path / "r" / b / "verify.json").read_text()) for b in ("left", "right")}
    assert docs["left"]["remote"]["board"] == "left" and docs["left"]["remote"]["host"] == "root@127.0.0.1"
    assert docs["right"]["remote"]["tags"] == {"board": "pi"} and all(d["passed"] for d in docs.values())
    assert not (tmp_path / "r" / "other").exists()


@pytest.mark.slow
def test_ctrl_c_releases_the_place(
    boards, farm: LabgridFarm, remote_dir: Path, wheel_cache: Path, farm_bundle: Path, tmp_path: Path
) -> None:
    config, _ = boards
    argv = _argv(config, remote_dir, "verify", farm_bundle, "--place", "pi-a", "--out", tmp_path)
    # Its own process group, as a terminal's foreground job: Ctrl-C reaches edgekit and its ssh children.
    proc = subprocess.Popen(
        argv,
        cwd=REPO,
        env=_env(farm, wheel_cache),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=ctrl_c_as_from_a_terminal,
    )
    try:
        _wait_for(lambda: farm.holder("pi-a") == f"{os.uname().nodename}:edgekit-{proc.pid}/root", 120, "acquire")
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and "Traceback" not in stderr, stderr
    assert farm.holder("pi-a") is None
