"""MkDocs hook: the Architecture page's package table and import contracts, read from the code.

- `<!-- edgekit:packages -->` becomes a table of the packages (the four top-level ones and every package
  inside `toolkit/`), each described by the first paragraph of its `__init__.py` docstring (read with `ast`,
  nothing is imported). Moving or adding a package changes the page.
- `<!-- edgekit:import-contracts -->` becomes the import-linter contracts of pyproject.toml, the rules
  `make lint` enforces (`lint-imports`), as they are written there.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

PAGE = "architecture.md"
PACKAGES_MARKER = "<!-- edgekit:packages -->"
CONTRACTS_MARKER = "<!-- edgekit:import-contracts -->"
TOP_LEVEL = ("toolkit", "exporters", "runtimes", "benchmarks")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _summary(init: Path) -> str:
    doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
    return _cell(doc.split("\n\n", 1)[0]) or "(no docstring)"


def packages_table(repo: Path) -> str:
    rows = ["| package | what it holds |", "| --- | --- |"]
    for top in TOP_LEVEL:
        init = repo / top / "__init__.py"
        if not init.is_file():
            raise PluginError(f"docs/{PAGE}: package {top}/ not found (edit TOP_LEVEL in docs/hooks/architecture.py)")
        rows.append(f"| `{top}` | {_summary(init)} |")
        if top == "toolkit":
            for sub in sorted(p.parent for p in (repo / top).glob("*/__init__.py")):
                rows.append(f"| `{top}.{sub.name}` | {_summary(sub / '__init__.py')} |")
    return "\n".join(rows)


def _modules(names: list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def contracts_text(repo: Path) -> str:
    config = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config.get("tool", {}).get("importlinter", {}).get("contracts", [])
    if not contracts:
        raise PluginError(f"docs/{PAGE}: pyproject.toml has no [[tool.importlinter.contracts]]")
    out = []
    for i, contract in enumerate(contracts, 1):
        kind = contract.get("type", "?")
        out.append(f"{i}. **{_cell(contract.get('name', '(unnamed)'))}** ({kind})")
        if kind == "layers":
            layers = " → ".join(f"`{layer}`" for layer in contract.get("layers", []))
            out.append(f"    - layers, highest first (a layer may import only those below it): {layers}")
        if contract.get("source_modules"):
            out.append(f"    - these modules: {_modules(contract['source_modules'])}")
        if contract.get("forbidden_modules"):
            out.append(f"    - may not import: {_modules(contract['forbidden_modules'])}")
        if contract.get("ignore_imports"):
            out.append(f"    - allowed exceptions: {_modules(contract['ignore_imports'])}")
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    repo = Path(config.config_file_path).resolve().parent
    for marker in (PACKAGES_MARKER, CONTRACTS_MARKER):
        if markdown.count(marker) != 1:
            raise PluginError(f"docs/{PAGE} must hold the marker {marker} exactly once.")
    markdown = markdown.replace(PACKAGES_MARKER, packages_table(repo))
    return markdown.replace(CONTRACTS_MARKER, contracts_text(repo))
