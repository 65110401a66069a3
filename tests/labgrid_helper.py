"""A real labgrid farm on 127.0.0.1 for the farm tests (tests/test_farm.py): coordinator, exporter, places.

`labgrid-coordinator` listens on a free port on 127.0.0.1 only (it has no authentication) and keeps its
places.yaml in a tmp folder; one `labgrid-exporter` exports a `NetworkService` per board from a YAML config
written here, as a lab host's exporter would; `labgrid-client` creates the places, their matches and tags.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.sshd_helper import free_port

BIN = Path(sys.executable).parent


def require_labgrid() -> None:
    """Skip without labgrid (CI=true: fail instead, as for the other real tools)."""
    if not (BIN / "labgrid-coordinator").is_file():
        message = "needs labgrid: pip install -c constraints.txt -e '.[farm]' (make install does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@dataclass(frozen=True)
class Place:
    """A place to create: its name, tags, and the board behind it (`NetworkService` parameters)."""

    name: str
    tags: dict[str, str]
    address: str
    port: int
    username: str = "root"


@dataclass
class LabgridFarm:
    address: str  # the coordinator's HOST:PORT
    folder: Path

    def client(self, *args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
        """`labgrid-client -x ADDRESS ARGS`; its stdout (raises with stderr on failure when `check`)."""
        proc = subprocess.run(
            [str(BIN / "labgrid-client"), "-x", self.address, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **(env or {})},
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"labgrid-client {' '.join(args)}: {proc.stderr}")
        return proc.stdout + proc.stderr

    def holder(self, place: str) -> str | None:
        """Who holds `place` ("HOST/USER"), from `labgrid-client who` (None: free)."""
        for line in self.client("who").splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 3 and fields[2] == place:
                return f"{fields[1]}/{fields[0]}"
        return None


def _wait_port(proc: subprocess.Popen[bytes], port: int, log: Path, what: str) -> None:
    import socket

    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}: {log.read_text()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not listen within 30 s: {log.read_text()}")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def running_farm(tmp: Path, places: list[Place]) -> Iterator[LabgridFarm]:
    """A coordinator and one exporter ("lab1") serving `places`; yields the farm once every place is matched."""
    require_labgrid()
    port = free_port()
    address = f"127.0.0.1:{port}"
    (tmp / "coordinator").mkdir()
    clog = tmp / "coordinator.log"
    with open(clog, "w") as log:
        coordinator = subprocess.Popen(
            [str(BIN / "labgrid-coordinator"), "-l", address], cwd=tmp / "coordinator", stdout=log, stderr=log
        )
    exporter = None
    try:
        _wait_port(coordinator, port, clog, "labgrid-coordinator")
        config = "".join(
            f"{p.name}:\n  NetworkService:\n    address: {p.address}\n    username: {p.username}\n    port: {p.port}\n"
            for p in places
        )
        (tmp / "exporter.yaml").write_text(config)
        elog = tmp / "exporter.log"
        with open(elog, "w") as log:
            exporter = subprocess.Popen(
                [str(BIN / "labgrid-exporter"), "-c", address, "-n", "lab1", str(tmp / "exporter.yaml")],
                stdout=log,
                stderr=log,
            )
        farm = LabgridFarm(address, tmp)
        for p in places:
            farm.client("-p", p.name, "create")
            farm.client("-p", p.name, "add-match", f"lab1/{p.name}/NetworkService")
            farm.client("-p", p.name, "set-tags", *(f"{k}={v}" for k, v in p.tags.items()))
        deadline = time.monotonic() + 30
        while "NetworkService" not in farm.client("resources") or sum(
            line.startswith("lab1/") for line in farm.client("resources").splitlines()
        ) < len(places):
            if exporter.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"labgrid-exporter did not export the boards: {elog.read_text()}")
            time.sleep(0.2)
        yield farm
    finally:
        if exporter is not None:
            _stop(exporter)
        _stop(coordinator)
        shutil.rmtree(tmp / "coordinator", ignore_errors=True)
