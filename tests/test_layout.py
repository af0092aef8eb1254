"""The package's layout holds: imports point one way."""

from __future__ import annotations

import subprocess
import sys


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_protocol_is_pure():
    loaded = _loaded_after("import workspace_tui.protocol")
    assert not {"textual", "websockets", "asyncio"} & loaded


def test_cli_group_does_not_import_textual():
    loaded = _loaded_after("import workspace_tui.cli")
    assert "textual" not in loaded


def test_version_runs_as_module():
    out = subprocess.run([sys.executable, "-m", "workspace_tui", "--version"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "workspace" in out.stdout
