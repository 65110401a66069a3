"""One meaning per option name across every command, the table in docs/cli-options.md, and the run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer.testing import CliRunner

from tests.conftest import REPO
from toolkit.cli import app
from toolkit.cli.option_names import conflicts, markdown, meanings
from toolkit.cli.options import LimitOpt


def test_every_option_name_has_one_meaning() -> None:
    assert conflicts(meanings(app)) == []


def test_a_second_meaning_or_a_shared_short_flag_is_caught() -> None:
    """The check itself: a command that gives --limit another help text, and -n to another option, fails it."""
    demo = typer.Typer()

    @demo.command()
    def first(limit: LimitOpt = None) -> None:
        """Uses the shared --limit."""

    @demo.command()
    def second(
        limit: Annotated[int | None, typer.Option("--limit", "-n", help="Stop after N seconds.")] = None,
        name: Annotated[str, typer.Option("--name", "-n", help="A name.")] = "",
    ) -> None:
        """Gives --limit another meaning and -n to --name."""

    problems = conflicts(meanings(demo))
    assert any(p.startswith("--limit has 2 meanings") and "Stop after N seconds" in p for p in problems), problems
    assert "-n is short for --limit, --name" in problems


def test_docs_table_is_generated_from_the_app() -> None:
    table = (REPO / "docs" / "cli-options.md").read_text()
    assert table == markdown(app), "docs/cli-options.md is stale: python -m toolkit.cli.option_names > it"
    assert table.startswith("# Option names\n")


def test_help_shows_no_type_beside_flags() -> None:
    for args in (["--help"], ["bench", "--help"], ["predict", "--help"]):
        result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.output, result.output
        assert "--help" in result.output
    assert "--version" in CliRunner().invoke(app, ["--help"]).output


def test_default_run_dir_is_the_latest_of_runs_dir(tmp_path: Path) -> None:
    runs = tmp_path / "elsewhere"
    for command in ("export", "parity", "bench", "report", "bundle", "diagnose", "mcu"):
        extra = ["--out", str(tmp_path / "b")] if command == "bundle" else []
        result = CliRunner().invoke(app, [command, "--runs-dir", str(runs), *extra])
        assert result.exit_code == 1, (command, result.output)
        assert f"{runs}/latest does not exist" in result.stderr, (command, result.stderr)
    assert not (tmp_path / "b").exists()


def test_runs_dir_latest_is_followed(tmp_path: Path) -> None:
    """`<runs-dir>/latest` leads to its run: here one without model.keras, which export names."""
    run = tmp_path / "runs" / "20260101-000000"
    run.mkdir(parents=True)
    (tmp_path / "runs" / "latest").symlink_to(run.name)
    result = CliRunner().invoke(app, ["export", "--runs-dir", str(tmp_path / "runs"), "-f", "onnx", "-p", "fp32"])
    assert result.exit_code == 1 and "no model.keras" in result.stderr, result.output
    assert str(run) in result.stderr


def test_gate_accuracy_budget_is_a_float_in_points(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["gate", str(tmp_path), "--baseline", str(tmp_path), "--max-accuracy-drop", "x"])
    assert result.exit_code == 2 and "--max-accuracy-drop" in result.output


def test_help_texts_quote_the_tolerance_module() -> None:
    from toolkit.tolerances import MACHINE_HELP, PARITY_HELP

    def flat(text: str) -> str:
        return " ".join(text.replace("│", " ").split())

    parity = flat(CliRunner().invoke(app, ["parity", "--help"], env={"COLUMNS": "200"}).output)
    verify = flat(CliRunner().invoke(app, ["verify", "--help"], env={"COLUMNS": "200"}).output)
    assert flat(PARITY_HELP) in parity and flat(MACHINE_HELP) in parity
    assert flat(MACHINE_HELP) in verify and "_HELP}" not in parity + verify


def test_no_help_text_loses_a_bracketed_word_to_rich_markup() -> None:
    """Rich reads `[farm]` in `edgekit[farm]` as a style tag and drops it: brackets meant as text are escaped
    (`\\[`), so what is printed keeps every bracketed word that is not one of the styles the texts use."""
    import re

    from rich.text import Text

    styles = re.compile(r"(?<!\\)\[/?(?:b|i|bold|dim|italic|code)?\]")
    texts: list[str] = []
    group = typer.main.get_command(app)
    assert hasattr(group, "commands")
    for name, command in group.commands.items():
        texts.append(f"{name}: {command.help or ''}")
        texts.extend(f"{name} {p.name}: {getattr(p, 'help', None) or ''}" for p in command.params)
    lost = [t for t in texts if Text.from_markup(t).plain != styles.sub("", t).replace("\\[", "[")]
    assert lost == []
