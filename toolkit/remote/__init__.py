"""Remote boards over the user's own OpenSSH: `verify --remote` and `bench --remote`, and a labgrid board farm.

    ssh.py            ssh/scp argv and one host's calls (user's OpenSSH, BatchMode)
    hosts.py          hosts in parallel: the bundle or run copied, edgekit run there, results fetched back
    boards.py         what a command runs on: SSH hosts, a TOML inventory of them (`--inventory`), leases
    farm.py           labgrid places (`--place`, `--farm KEY=VALUE`): acquired, reached by NetworkService, released
    farm_helper.py    the labgrid side, run as subprocesses: the places as JSON, the watchdog releasing after a crash
    provision.py      the runtime-only edgekit venv on a host: probe, refuse in one line, install or reuse
    host_install.py   the set-up program `provision.py` runs on the host with its python3 (stdlib only, 3.9)
    wheel.py          the one edgekit wheel builder and the local cache (EDGEKIT_CACHE_DIR)
    wheelhouse.py     wheels downloaded here for an offline host's platform
    lite.py           the TFLite-only install for 32-bit ARM (tflite-runtime 2.13, numpy<2)
    extras.py         what a bundle adds to a board's install (OpenVINO for an IR), and only then
    errors.py         `RemoteError`, `WheelError`

`toolkit.emulate` installs the same wheel and TFLite-only set into its ARM roots (`wheel.py`, `lite.py`).
May import: `runtimes`, `toolkit.bundles`, `toolkit.errors` and `toolkit.run`. Never the CLI, Rich or
Typer: progress goes through plain callbacks (`ssh.Events`); the host table is `toolkit/cli/present.py`'s.
"""
