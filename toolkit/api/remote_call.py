"""One API call on a board, sent as its parameters: `python -m toolkit.api.remote_call FUNCTION 'JSON'`.

`bench --remote` runs `toolkit.bench` on the host with the desktop's own `BenchSettings` (as JSON), not a
command line rebuilt from the desktop's options, so the host measures exactly what the desktop asked for.
Exit codes as the CLI's: 0 done, 1 a user error (one `error: ...` line on stderr), 3 a threshold failed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from runtimes.errors import EdgekitError, one_line


def _bench(run_dir: str, settings: dict[str, Any], artifacts: list[str] | None = None) -> int:
    import toolkit
    from toolkit.steps.bench_settings import BenchSettings

    toolkit.bench(run_dir, settings=BenchSettings.model_validate(settings), artifacts=artifacts)
    return 0


CALLS: dict[str, Callable[..., int]] = {"bench": _bench}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] not in CALLS:
        print(f"error: usage: python -m toolkit.api.remote_call {{{','.join(CALLS)}}} JSON", file=sys.stderr)
        return 2
    try:
        kwargs = json.loads(args[1])
        return CALLS[args[0]](**kwargs)
    except EdgekitError as exc:
        print(f"error: {one_line(exc, 1000)}", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as exc:  # a request this version does not understand
        print(f"error: the desktop's request is not understood by this edgekit: {one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
