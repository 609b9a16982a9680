"""The README cannot drift from the code: every setting and every command is documented."""

from __future__ import annotations

from typer.testing import CliRunner

from clipsearch.cli import app
from clipsearch.settings import settings_table
from conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme():
    missing = [env for _, env, _, _ in settings_table() if f"`{env}`" not in README]
    assert missing == []


def test_the_readme_starts_with_the_two_commands_ci_runs():
    assert README.index("make serve") < README.index("make test")
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_every_command_has_help_with_an_example():
    runner = CliRunner()
    for command in (["index", "build"], ["ask"], ["serve"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0 and "Example usage" in result.output, command
        assert f"clipsearch {' '.join(command)}" in README
