"""The one-liners start fast: nothing heavy at import, never Textual or Rich."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"import sys; {code}; print('\\n'.join(sys.modules))"], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_oneliners_module_imports_nothing_heavy():
    loaded = _modules_after("import workspace_tui.cli.oneliners")
    assert not {"textual", "rich", "asyncio", "websockets", "sqlite3"} & loaded


def test_the_client_never_pulls_in_the_tui():
    loaded = _modules_after("import workspace_tui.client")
    assert not {"textual", "rich"} & loaded
    assert not any(m.startswith("workspace_tui.tui") or m.startswith("workspace_tui.server") for m in loaded)
