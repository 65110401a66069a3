"""MkDocs hook: links written for the repository (GitHub) also work on the built site.

The pages under docs/ link to files outside it the way GitHub resolves them, e.g.
`../benchmarks/results/2026-12-05-x86_64-xeon-2cpu/README.md` or `../toolkit/tolerances.py`. MkDocs only
knows files inside docs/, so this hook

- adds every file under `benchmarks/results/` to the site at its repository path, and any other repository
  file a page links to: a README.md becomes a page (each results folder's README.md is that folder's page),
  every other file is copied as it is (saved report.md files are records, published verbatim: some link to
  gallery images that were never saved);
- rewrites each relative link to where its target lands on the site: `../X` from a docs page becomes `X`,
  `../../docs/parity.md` from a results page becomes the site's `parity.md`, and a link to a folder
  (`../benchmarks/results/`) goes to that folder's README.md.

A link to a file that does not exist is left alone, so MkDocs reports it and `mkdocs build --strict` fails.
The README is not a page of the site, but its relative links are checked the same way (they must name files
of the repository), so a moved page breaks the build rather than the front page.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.plugins import get_plugin_logger
from mkdocs.structure.files import File, Files, InclusionLevel

log = get_plugin_logger("repo_files")

# Published whole: every saved measurement, so the results pages and the files they link to are on the site.
PUBLISHED_TREES = ("benchmarks/results",)
# An inline link or image `[text](target "title")`, or a reference definition `[id]: target`.
LINK = re.compile(r"(?P<head>\]\(|^\s{0,3}\[[^\]]+\]:\s+)(?P<target><[^>]*>|[^)\s]+)", re.M)
FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,}).*?^\1\2[ \t]*$", re.M | re.S)
SKIPPED_PARTS = {"__pycache__", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


def _repo(config: Any) -> Path:
    return Path(config.config_file_path).resolve().parent


def _docs_prefix(config: Any) -> str:
    return Path(config.docs_dir).resolve().relative_to(_repo(config)).as_posix() + "/"


def _is_external(target: str) -> bool:
    return target.startswith(("#", "/", "mailto:")) or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) is not None


def _links(markdown: str) -> list[str]:
    """Relative link targets in a page, outside fenced code blocks (fragments and titles dropped)."""
    text = FENCE.sub("", markdown)
    targets = []
    for match in LINK.finditer(text):
        target = match.group("target").strip("<>")
        if not _is_external(target):
            targets.append(target.split("#", 1)[0])
    return [t for t in targets if t]


def _real_path(file: File, config: Any) -> str:
    """The repository path of a site file (docs pages live under docs/, added files at their own path)."""
    return file.src_uri if getattr(file, "edgekit_repo_file", False) else _docs_prefix(config) + file.src_uri


def _resolve(real_page: str, target: str, repo: Path) -> str | None:
    """The repository path a link points at, a folder link taken to its README.md; None if it leaves the repo."""
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(real_page), target))
    if resolved.startswith("../") or resolved == "..":
        return None
    if (repo / resolved).is_dir():
        for index in ("README.md", "index.md"):
            if (repo / resolved / index).is_file():
                return posixpath.join(resolved, index)
        return resolved  # a folder without a page: MkDocs reports the link
    return resolved


class _CopiedFile(File):
    """A repository file published byte for byte, even a Markdown one (MkDocs would render it as a page)."""

    def is_documentation_page(self) -> bool:
        return False

    def is_static_page(self) -> bool:
        return True


def _add(files: Files, config: Any, path: str) -> bool:
    """Add the repository file `path` to the site at its own path; False when it is already there."""
    if files.get_file_from_path(path) is not None:
        return False
    kind = File if posixpath.basename(path) == "README.md" else _CopiedFile
    file = kind.generated(config, path, abs_src_path=str(_repo(config) / path), inclusion=InclusionLevel.NOT_IN_NAV)
    file.edgekit_repo_file = True  # type: ignore[attr-defined]
    files.append(file)
    return True


def on_files(files: Files, config: Any) -> Files:
    repo, docs = _repo(config), _docs_prefix(config)
    for tree in PUBLISHED_TREES:
        for path in sorted((repo / tree).rglob("*")):
            if path.is_file() and not SKIPPED_PARTS.intersection(path.parts):
                _add(files, config, path.relative_to(repo).as_posix())
    # Follow the links of every page (docs pages and the added ones) to the repository files they name.
    pending = [f for f in files if f.is_documentation_page()]
    while pending:
        page = pending.pop()
        if page.abs_src_path is None:
            continue
        real = _real_path(page, config)
        for target in _links(Path(page.abs_src_path).read_text(encoding="utf-8")):
            resolved = _resolve(real, target, repo)
            if resolved is None or resolved.startswith(docs) or not (repo / resolved).is_file():
                continue
            if _add(files, config, resolved):
                added = files.get_file_from_path(resolved)
                if added is not None and added.is_documentation_page():
                    pending.append(added)
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    repo, docs = _repo(config), _docs_prefix(config)
    real = _real_path(page.file, config)
    fences = [m.span() for m in FENCE.finditer(markdown)]

    def rewrite(match: re.Match[str]) -> str:
        if any(start <= match.start() < end for start, end in fences):
            return match.group(0)
        raw = match.group("target")
        target = raw.strip("<>")
        if _is_external(target):
            return match.group(0)
        path, _, fragment = target.partition("#")
        resolved = _resolve(real, path, repo) if path else None
        if resolved is None:
            return match.group(0)
        site_uri = resolved[len(docs) :] if resolved.startswith(docs) else resolved
        if files.get_file_from_path(site_uri) is None:
            return match.group(0)  # not on the site: MkDocs reports the link as it was written
        new = posixpath.relpath(site_uri, posixpath.dirname(page.file.src_uri) or ".")
        if fragment:
            new += "#" + fragment
        return match.group("head") + (f"<{new}>" if raw.startswith("<") else new)

    return LINK.sub(rewrite, markdown)


def on_post_build(config: Any) -> None:
    repo = _repo(config)
    readme = repo / "README.md"
    if not readme.is_file():
        return
    for target in _links(readme.read_text(encoding="utf-8")):
        resolved = _resolve("README.md", target, repo)
        if resolved is None or not (repo / resolved).exists():
            log.warning(f"README.md contains a link '{target}', but the target is not found in the repository.")
