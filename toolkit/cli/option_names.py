"""The option names of every `edgekit` command, read from the Typer app: one meaning per name, and its table.

`meanings(app)` maps each option name to what it means on each command (help text, short flag, the type and
range of one value); `conflicts()` lists every name that means two things, and every short flag shared by two
names. tests/test_cli_options.py fails on any conflict and on a stale docs/cli-options.md, which is written by

    python -m toolkit.cli.option_names > docs/cli-options.md
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

# Why `--allow-unverified` is on some commands and not on others (it only means something where data loads).
ALLOW_UNVERIFIED_NOTE = """\
`--allow-unverified` is on every command that loads a dataset (train, export, parity, bench, pipeline, bundle,
diagnose, mcu): there MNIST data whose checksums differ from the published files is refused unless it is given.
The others load no dataset, so it would mean nothing there: `predict` reads the images you name, `verify` checks
a bundle's golden inputs against the sha256 the bundle records, `gate` and `report` read JSON files.
"""


@dataclass(frozen=True)
class Meaning:
    """What an option name means on a command: two commands agree when all of these are equal."""

    help: str
    short: tuple[str, ...]
    value: str  # "flag", or the type of one value: "int", "path", "on|off", ...
    limits: tuple[Any, Any]


@dataclass
class Name:
    """One option name: each meaning it has, with the commands it has it on (repeatable there or not)."""

    name: str
    hidden: bool = False
    commands: dict[Meaning, list[tuple[str, bool]]] | None = None


def _value(param: Any, ctx: Any) -> str:
    if param.is_flag:
        return "flag"
    shown = param.display_type(ctx).strip("<>")
    shown = re.sub(r"^list\[(.*)\]$", r"\1", shown)
    return shown.removesuffix(" range")


def _meaning(param: Any, ctx: Any) -> Meaning:
    short = tuple(sorted(f for f in [*param.opts, *param.secondary_opts] if not f.startswith("--")))
    return Meaning(param.help or "", short, _value(param, ctx), (param.min, param.max))


def _long_names(param: Any) -> list[str]:
    return [f for f in [*param.opts, *param.secondary_opts] if f.startswith("--")]


def meanings(app: Any) -> dict[str, Name]:
    """Every option name of `app` (a Typer app), the global ones under the command name `edgekit`."""
    import typer
    import typer.main

    group = typer.main.get_command(app)
    root = typer.Context(group, info_name="edgekit")
    places: list[tuple[str, Any, Any]] = [("edgekit", group, root)]
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        places.append((name, command, typer.Context(command, parent=root, info_name=name)))
    names: dict[str, Name] = {}
    for where, command, ctx in places:
        for param in command.get_params(ctx):
            if param.param_type_name != "option":
                continue
            key = _long_names(param)[0]  # a --x/--no-x flag is listed under --x
            entry = names.setdefault(key, Name(key, hidden=param.hidden, commands={}))
            assert entry.commands is not None
            entry.hidden = entry.hidden and param.hidden
            entry.commands.setdefault(_meaning(param, ctx), []).append((where, bool(param.multiple)))
    return dict(sorted(names.items()))


def conflicts(names: dict[str, Name]) -> list[str]:
    """One line per name with two meanings, and per short flag on two names; empty when all is well."""
    problems = []
    for entry in names.values():
        assert entry.commands is not None
        if len(entry.commands) > 1:
            ways = "; ".join(
                f"{', '.join(c for c, _ in cmds)}: {m.value} {m.short or ''} {m.limits} {m.help!r}"
                for m, cmds in entry.commands.items()
            )
            problems.append(f"{entry.name} has {len(entry.commands)} meanings: {ways}")
    owners: dict[str, set[str]] = defaultdict(set)
    for entry in names.values():
        assert entry.commands is not None
        for meaning in entry.commands:
            for flag in meaning.short:
                owners[flag].add(entry.name)
    problems += [f"{flag} is short for {', '.join(sorted(n))}" for flag, n in owners.items() if len(n) > 1]
    return problems


def _cell(text: str) -> str:
    text = re.sub(r"(?<!\\)\[/?[a-z ]*\]", "", text)  # Rich markup: [b]…[/]; \[ is a literal bracket
    return text.replace("\\[", "[").replace("|", "\\|").replace("\n", " ")


def _commands(uses: list[tuple[str, bool]], every: set[str]) -> str:
    if {c for c, _ in uses} == every:
        return "every command"
    return ", ".join(f"{c} (repeatable)" if many else c for c, many in sorted(uses))


def markdown(app: Any) -> str:
    """docs/cli-options.md: the table of every option name, its one meaning and the commands that take it."""
    import typer.main

    names = meanings(app)
    every = {"edgekit", *typer.main.get_command(app).commands}  # type: ignore[attr-defined]
    lines = [
        "# Option names",
        "",
        "Every option of `edgekit` and its one meaning: a name has the same help text, short flag and value type",
        "on every command that takes it (`tests/test_cli_options.py` checks it). Generated from the Typer app by",
        "`python -m toolkit.cli.option_names > docs/cli-options.md`; `edgekit COMMAND --help` shows each",
        "command's defaults. `edgekit` in the commands column is the program itself (`edgekit --version`).",
        "",
        "| Option | Short | Value | Meaning | Commands |",
        "|---|---|---|---|---|",
    ]
    hidden: list[str] = []
    for entry in names.values():
        assert entry.commands is not None
        for meaning, uses in entry.commands.items():
            row = [
                f"`{entry.name}`",
                " ".join(f"`{s}`" for s in meaning.short),
                _cell(meaning.value),
                _cell(meaning.help),
                _commands(uses, every),
            ]
            (hidden if entry.hidden else lines).append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "Renamed in 0.1: export's accuracy budget, once --max-drop, is `--max-accuracy-drop` (the name bench and gate "
        "use for the same budget), and the model's output kind, once --output, is `--output-kind`.",
        "",
        "## Where `--allow-unverified` is, and why not elsewhere",
        "",
        *ALLOW_UNVERIFIED_NOTE.splitlines(),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    from toolkit.cli.typer_app import app

    sys.stdout.write(markdown(app))
