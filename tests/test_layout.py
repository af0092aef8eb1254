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


# Which subpackages each layer may import from; cli sits on top of everything.
ALLOWED = {
    "protocol": set(),
    "paths": set(),
    "config": {"paths"},
    "server": {"protocol", "paths", "server"},
    "client": {"protocol", "paths", "client"},
    "tui": {"protocol", "paths", "config", "client", "tui"},
}


def _workspace_imports(path):
    import ast

    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "workspace_tui" and len(parts) > 1:
                yield parts[1]


def test_imports_point_one_way():
    from pathlib import Path

    import workspace_tui

    root = Path(workspace_tui.__file__).parent
    wrong = []
    for layer, allowed in ALLOWED.items():
        files = [root / f"{layer}.py"] if (root / f"{layer}.py").exists() else sorted((root / layer).rglob("*.py"))
        for path in files:
            for target in _workspace_imports(path):
                if target not in allowed and target != "__init__":
                    wrong.append(f"{path.relative_to(root)} imports workspace_tui.{target}")
    assert not wrong, "\n".join(wrong)
