"""MkDocs hook: the CLI reference page, generated from the Typer app, and a check of every command line.

- docs/cli.md holds a marker; at build time it is replaced by what Typer's own documentation generator
  (`typer MODULE utils docs`) writes for the `edgekit` app: every command, its arguments and options with
  their types and defaults, and the help texts. Nothing is pasted, so the page follows the code.
- Every `edgekit COMMAND ... --option` written in code on any page, and in README.md, is checked against the
  app: an unknown command or an option that command does not have is a warning, which fails
  `mkdocs build --strict` (`make test`); so is an option named alone in a code span (`--max-drop`) that no
  command has. Renaming an option without updating the docs cannot go unnoticed.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.plugins import get_plugin_logger

log = get_plugin_logger("cli_reference")

PAGE = "cli.md"
MARKER = "<!-- edgekit:cli-reference -->"
APP_MODULE, APP_NAME = "toolkit.cli.typer_app", "app"  # the console script `edgekit` runs this Typer app
PROGRAM = "edgekit"

FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})[^\n]*\n(?P<body>.*?)^\1\2[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(?P<body>.+?)(?<!`)\1(?!`)", re.S)
# A command line: `edgekit ...` at the start of a code span or of a line in a code block (after a `$ ` prompt
# or `sudo`); console output that merely mentions edgekit mid-line is not one.
COMMAND_LINE = re.compile(rf"^\s*(?:\$\s+)?(?:sudo\s+)?{PROGRAM}\s+(?P<rest>[a-z][^\n]*)", re.M)
# An option named alone in a code span, e.g. `--max-drop` or `--cpu NAME`: it must be some command's option.
BARE_OPTION = re.compile(r"^(?P<option>--[A-Za-z][A-Za-z0-9-]*)(?:[ =][^\n]*)?$")
BOLD = re.compile(r'<span style="font-weight: bold">(.*?)</span>', re.S)


def _repo(config: Any) -> Path:
    return Path(config.config_file_path).resolve().parent


def on_config(config: Any) -> Any:
    repo = str(_repo(config))
    if repo not in sys.path:
        sys.path.insert(0, repo)
    _commands.cache_clear()
    return config


# --- the reference page -------------------------------------------------------------------------------------


def typer_docs(repo: Path) -> str:
    """Markdown for the whole app from Typer's generator, run as the `typer` command line does it."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "typer", "--app", APP_NAME, APP_MODULE, "utils", "docs", "--name", PROGRAM]
    proc = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise PluginError(
            f"docs/{PAGE}: `{' '.join(command[1:])}` failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
        )
    return proc.stdout


def tidy(markdown: str) -> str:
    """Fit Typer's output into the page: no second title, bold help markup as code, help lines kept apart."""
    lines = markdown.strip().splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]  # the page has its own title
    out: list[str] = []
    in_fence = False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            in_fence = not in_fence
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        prose = not in_fence and line.strip() and not line.startswith(("#", "*", "```"))
        if prose and nxt.strip() and not nxt.startswith(("#", "*", "```")):
            line += "<br>"  # the help texts break lines on purpose (examples, one per line)
        out.append(BOLD.sub(r"<code>\1</code>", line))
    return "\n".join(out).strip() + "\n"


# --- the check of command lines -----------------------------------------------------------------------------


def _options(params: Any) -> set[str]:
    """Option names (long, short and --no- forms) of visible parameters: hidden ones are deprecated spellings
    the docs must not teach."""
    return {
        opt for p in params if not getattr(p, "hidden", False) for opt in (*p.opts, *getattr(p, "secondary_opts", ()))
    }


@cache
def _group() -> Any:
    import typer.main

    module = __import__(APP_MODULE, fromlist=[APP_NAME])
    return typer.main.get_command(getattr(module, APP_NAME))


@cache
def _commands() -> dict[str, set[str]]:
    """Each command's option names as the Typer app declares them."""
    commands = getattr(_group(), "commands", {})
    return {name: {"--help"} | _options(cmd.params) for name, cmd in commands.items()}


def _code_texts(markdown: str) -> list[str]:
    """The text of every fenced code block and inline code span."""
    texts = [m.group("body") for m in FENCE.finditer(markdown)]
    texts += [m.group("body") for m in CODE_SPAN.finditer(FENCE.sub("", markdown))]
    return texts


def _words(rest: str) -> list[str]:
    rest = re.split(r"\s(?:#|\||&&|;|>|2>)", rest, maxsplit=1)[0]  # stop at a comment, pipe or redirection
    try:
        return shlex.split(rest)
    except ValueError:
        return rest.split()


def command_line_problems(markdown: str) -> list[str]:
    """Unknown commands and options in the `edgekit ...` command lines written in code, and options named
    alone in a code span (`--max-drop`) that no command has."""
    commands = _commands()
    problems = []
    every_option = set().union(*commands.values(), _options(_group().params))  # --version is the program's
    for match in CODE_SPAN.finditer(FENCE.sub("", markdown)):
        bare = BARE_OPTION.match(match.group("body").strip())
        if bare and bare.group("option") not in every_option:
            problems.append(f"`{bare.group('option')}`: no {PROGRAM} command has this option")
    for text in _code_texts(markdown):
        for match in COMMAND_LINE.finditer(text):
            words = _words(match.group("rest"))
            if not words:
                continue
            name, args = words[0], words[1:]
            if name not in commands:
                problems.append(f"`{PROGRAM} {name}`: no such command")
                continue
            for word in args:
                option = word.split("=", 1)[0]
                if re.fullmatch(r"--?[A-Za-z][A-Za-z0-9-]*", option) and option not in commands[name]:
                    problems.append(f"`{PROGRAM} {name} {option}`: {name} has no option {option}")
    return sorted(set(problems))


def _report(where: str, markdown: str) -> None:
    for problem in command_line_problems(markdown):
        log.warning(f"{where}: {problem} (see `{PROGRAM} --help`)")


# --- hooks --------------------------------------------------------------------------------------------------


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if not getattr(page.file, "edgekit_repo_file", False):  # saved results record the commands of their day
        _report(f"Doc file '{page.file.src_uri}'", markdown)
    if page.file.src_uri != PAGE:
        return markdown
    if markdown.count(MARKER) != 1:
        raise PluginError(f"docs/{PAGE} must hold the marker {MARKER} exactly once (where the reference goes).")
    return markdown.replace(MARKER, tidy(typer_docs(_repo(config))))


def on_post_build(config: Any) -> None:
    readme = _repo(config) / "README.md"
    if readme.is_file():
        _report("README.md", readme.read_text(encoding="utf-8"))
