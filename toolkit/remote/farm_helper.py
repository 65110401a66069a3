"""The two labgrid-side programs of the farm (`farm.py`), run as subprocesses of edgekit:

    python -m toolkit.remote.farm_helper state COORDINATOR
        prints the coordinator's places as JSON: tags, comment, who holds each, its matching resources
        (class, parameters, available, acquired);
    python -m toolkit.remote.farm_helper watch COORDINATOR LABGRID_CLIENT HOST/USER
        the watchdog: reads `+PLACE` / `-PLACE` lines on stdin while edgekit holds places; when stdin
        closes (edgekit ended, even by kill -9) it releases every place still listed, but only from
        HOST/USER (`labgrid-client release-from`: a place someone else holds by then is never touched).

Why subprocesses: labgrid's client API (`ClientSession`) is asyncio + gRPC with one event loop per thread
and prints to stdout; edgekit fans out in threads. A short-lived process per query keeps gRPC out of edgekit's
process, and acquire/release go through `labgrid-client` itself (its checks, its messages). Only `state` imports
labgrid; `watch` is the standard library.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def state(address: str) -> dict[str, Any]:
    """Every place of the coordinator at `address` with the resources its matches select."""
    import contextlib
    import io

    from labgrid.remote.client import start_session

    with contextlib.redirect_stdout(io.StringIO()):  # labgrid prints progress; stdout is our JSON
        session = start_session(address)
    try:
        resources = [
            ((exporter, group_name, entry.cls, name), entry)
            for exporter, groups in session.resources.items()
            for group_name, group in groups.items()
            for name, entry in group.items()
        ]
        places = {}
        for name, place in session.places.items():
            places[name] = {
                "tags": dict(place.tags),
                "comment": place.comment,
                "acquired": place.acquired,
                "reservation": place.reservation,
                "resources": [
                    {
                        "path": "/".join(path),
                        "cls": entry.cls,
                        "params": entry.params,
                        "avail": bool(entry.avail),
                        "acquired": entry.acquired,
                    }
                    for path, entry in resources
                    if place.hasmatch(path)
                ],
            }
        return {"places": places}
    finally:
        session.loop.run_until_complete(session.stop())
        session.loop.run_until_complete(session.close())


def watch(address: str, client: str, owner: str) -> None:
    """Release from `owner` every place still held when stdin closes (module docstring)."""
    held: list[str] = []
    for line in sys.stdin:
        sign, place = line[:1], line[1:].strip()
        if sign == "+" and place not in held:
            held.append(place)
        elif sign == "-" and place in held:
            held.remove(place)
    env = {**os.environ, "LG_COORDINATOR": address}
    for place in held:
        subprocess.run(
            [client, "-x", address, "-p", place, "release-from", owner],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )


def main(argv: list[str]) -> int:
    if argv[:1] == ["state"] and len(argv) == 2:
        try:
            print(json.dumps(state(argv[1])))
        except Exception as exc:  # the parent turns this line into its one-line error
            print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        return 0
    if argv[:1] == ["watch"] and len(argv) == 4:
        watch(argv[1], argv[2], argv[3])
        return 0
    print("error: usage: python -m toolkit.remote.farm_helper {state ADDRESS | watch ADDRESS CLIENT HOST/USER}")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
