"""The docs cannot drift from the code: every setting is on the settings page, every command in the README."""

from __future__ import annotations

from conftest import REPO
from typer.testing import CliRunner

from clipsearch.cli import app
from clipsearch.settings import settings_table

README = (REPO / "README.md").read_text(encoding="utf-8")
SETTINGS_PAGE = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")


def test_every_setting_is_on_the_settings_page():
    missing = [env for _, env, _, _ in settings_table() if f"`{env}`" not in SETTINGS_PAGE]
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
