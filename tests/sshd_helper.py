"""A real OpenSSH sshd on 127.0.0.1 for the remote-board tests (tests/test_remote*.py).

One sshd process listens on one port per host alias; a `Match LocalPort` block gives each alias its
own environment (`SetEnv`), which is how a host with an offline pip or a PATH wrapper (an armv7l
`uname`, an old `python3`) is made from this machine. `sftp=False` leaves out the `Subsystem sftp`
line, as on Dropbear, BusyBox and Yocto images.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SSHD = Path("/usr/sbin/sshd")
# sshd's default PATH for root sessions (a SetEnv PATH replaces it, so wrappers go in front of it).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_sshd() -> None:
    if not SSHD.is_file():
        pytest.skip("needs OpenSSH's server: apt-get install openssh-server (/usr/sbin/sshd is missing)")
    if os.geteuid() != 0:
        pytest.skip("needs root: sshd logs in as the current user only when run by root")
    if not (shutil.which("ssh") and shutil.which("scp") and shutil.which("ssh-keygen")):
        pytest.skip("needs the OpenSSH client (ssh, scp, ssh-keygen)")


@contextmanager
def running_sshd(
    tmp: Path, hosts: dict[str, str], *, sftp: bool = True, dead: str = "", force: dict[str, str] | None = None
) -> Iterator[Path]:
    """sshd for `hosts` ({"alias [alias2]": "SetEnv value or ''"}); yields an ssh client config naming them.

    `dead` names an alias whose port nothing listens on; `force` gives aliases a ForceCommand (the
    command the client asked for is in $SSH_ORIGINAL_COMMAND), e.g. to run it in a chroot.
    """
    force = force or {}
    require_sshd()
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / key)], check=True)
    shutil.copyfile(tmp / "client_key.pub", tmp / "authorized_keys")
    ports = {alias: free_port() for alias in hosts}
    config = "".join(f"Port {port}\n" for port in ports.values())
    config += (
        f"ListenAddress 127.0.0.1\nHostKey {tmp / 'host_key'}\n"
        f"AuthorizedKeysFile {tmp / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        f"PidFile {tmp / 'sshd.pid'}\n"
    )
    if sftp:
        config += "Subsystem sftp internal-sftp\n"
    for alias, env in hosts.items():  # Match blocks last: they run to the end of the file
        if env or alias in force:
            config += f"Match LocalPort {ports[alias]}\n"
            config += f"  SetEnv {env}\n" if env else ""
            config += f"  ForceCommand {force[alias]}\n" if alias in force else ""
    (tmp / "sshd_config").write_text(config)
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation directory
    log = open(tmp / "sshd.log", "w")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(tmp / "sshd_config")], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 15
        for port in ports.values():
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"sshd exited with {proc.returncode}: {(tmp / 'sshd.log').read_text()}")
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                if time.monotonic() > deadline:
                    pytest.fail("sshd did not accept connections within 15 s")
                time.sleep(0.1)
        common = (
            f"  HostName 127.0.0.1\n  User root\n  IdentityFile {tmp / 'client_key'}\n  IdentitiesOnly yes\n"
            "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
        )
        client = "".join(f"Host {alias}\n  Port {port}\n{common}" for alias, port in ports.items())
        if dead:
            client += f"Host {dead}\n  Port {free_port()}\n{common}"
        (tmp / "ssh_config").write_text(client)
        yield tmp / "ssh_config"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
