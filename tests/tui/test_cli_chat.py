"""``workspace chat`` as a command: options, help, and no Textual at import."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from workspace_tui.cli import main


def test_chat_help_lists_the_options():
    result = CliRunner().invoke(main, ["chat", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--url", "--username", "--token", "--serve", "--port", "--db", "--bell / --no-bell", "--auto-away"):
        assert option in result.output
    assert "F2 online" in result.output


def test_chat_module_imports_textual_only_when_run():
    code = "import sys, workspace_tui.cli.chat; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_chat_rejects_bad_username():
    result = CliRunner().invoke(main, ["chat", "--username", "bad name!"])
    assert result.exit_code == 2
