"""`python -m toolkit.cli`: the same as the `edgekit` command."""

from toolkit.cli import main

main()
