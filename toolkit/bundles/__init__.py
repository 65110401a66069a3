"""Bundles: a run's artifacts with golden inputs and the desktop's outputs, built here, checked on a board.

    format.py         what a bundle holds: file names, bundle.json checks, sha256 of every file, opening one
    archive.py        gzipped tar files: written reproducibly, extracted safely
    build.py          building a bundle from a run (`build_bundle`)
    verify.py         the tolerances and checking a bundle's golden outputs on this machine (`verify_here`)
    errors.py         `BundleError`

The TFLite-only board install (`toolkit.cli.board`: Python 3.9, no Typer or pydantic) runs `verify.py`,
`format.py` and `archive.py`: they stay Python 3.9-clean (tests/test_board_python.py).
May import: `runtimes`, `benchmarks`, `toolkit.model.run_source` (a run's data and spec, for build.py),
`toolkit.data`, `toolkit.errors`, `toolkit.tolerances` and `toolkit.run`. Never the CLI, Rich or Typer.
"""
