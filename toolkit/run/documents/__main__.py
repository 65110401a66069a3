"""`python -m toolkit.run.documents --write-schemas docs/schemas` (or `--check docs/schemas`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    """Write or check the published JSON Schemas of the run documents; 1 when `--check` finds stale files."""
    parser = argparse.ArgumentParser(prog="python -m toolkit.run.documents", description=main.__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write-schemas", type=Path, metavar="DIR", help="write <name>.schema.json files into DIR")
    group.add_argument("--check", type=Path, metavar="DIR", help="exit 1 if DIR's schema files are out of date")
    args = parser.parse_args(argv)
    from toolkit.run.documents.schemas import stale_schemas, write_schemas

    if args.write_schemas is not None:
        for path in write_schemas(args.write_schemas):
            print(path)
        return 0
    stale = stale_schemas(args.check)
    if stale:
        print(f"out of date in {args.check}: {', '.join(stale)}; run --write-schemas {args.check}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
