"""MkDocs hook: the tolerance tables of docs/parity.md, generated from `toolkit.tolerances`.

`toolkit/tolerances.py` is the one place parity, verify and mcu read their tolerances from; its
`tolerance_markdown()` returns them as Markdown. This hook puts that text where docs/parity.md has the
marker below, so the page can never disagree with the code. Without the module (or without the marker)
the build stops with an error: the page is never built with tables typed by hand.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.plugins import get_plugin_logger

log = get_plugin_logger("tolerances")

PAGE = "parity.md"
MARKER = "<!-- edgekit:tolerances -->"
MODULE = "toolkit.tolerances"


def on_config(config: Any) -> Any:
    repo = str(Path(config.config_file_path).resolve().parent)
    if repo not in sys.path:
        sys.path.insert(0, repo)
    return config


def tolerance_tables(repo: Path) -> str:
    missing = (
        f"docs/{PAGE}: the module {MODULE} is missing (toolkit/tolerances.py in {repo}); the page's tolerance "
        f"tables are generated from its tolerance_markdown() and are never written by hand."
    )
    try:
        module = importlib.import_module(MODULE)
    except ModuleNotFoundError as exc:
        if exc.name not in (MODULE, "toolkit"):
            raise
        raise PluginError(missing) from exc
    # Another checkout's module (e.g. through an editable install made elsewhere) would describe other code.
    if not Path(module.__file__ or "").resolve().is_relative_to(repo):
        raise PluginError(f"{missing} (found {module.__file__} instead)")
    module = importlib.reload(module)  # `mkdocs serve` rebuilds in the same process
    render = getattr(module, "tolerance_markdown", None)
    if render is None:
        raise PluginError(f"docs/{PAGE}: {MODULE} has no tolerance_markdown(); the page's tables come from it.")
    text = render()
    if not isinstance(text, str) or not text.strip():
        raise PluginError(f"docs/{PAGE}: {MODULE}.tolerance_markdown() returned no Markdown.")
    return text.strip()


def _cells(row: str) -> int:
    """Cells in a Markdown table row: `|` separates them unless escaped as `\\|` or inside a code span."""
    row = re.sub(r"`[^`]*`", "", row.replace("\\|", ""))
    return len(row.strip().strip("|").split("|"))


def table_problems(markdown: str) -> list[str]:
    """Table rows whose cell count differs from their header's (an unescaped `|` in a cell, e.g. in |Δp|)."""
    problems, header = [], None
    for line in markdown.splitlines():
        if not line.lstrip().startswith("|"):
            header = None
            continue
        if header is None:
            header = _cells(line)
        elif _cells(line) != header:
            problems.append(f"{_cells(line)} cells where the header has {header}: {line.strip()}")
    return problems


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if markdown.count(MARKER) != 1:
        raise PluginError(f"docs/{PAGE} must hold the marker {MARKER} exactly once (where the tables go).")
    tables = tolerance_tables(Path(config.config_file_path).resolve().parent)
    for problem in table_problems(tables):
        log.warning(f"{MODULE}.tolerance_markdown(): a table row has {problem} (write | in a cell as \\|)")
    return markdown.replace(MARKER, tables)
