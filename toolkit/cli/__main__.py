"""`python -m toolkit.cli`: the same as the `edgekit` command."""

from toolkit.cli.app import main

main()
