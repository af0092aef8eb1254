"""The package's layout holds: imports point one way."""

from __future__ import annotations

import subprocess
import sys


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


IO_MODULES = {"asyncio", "websockets", "sqlite3", "redis", "socket", "selectors", "textual", "ssl"}


def test_protocol_is_pure():
    loaded = _loaded_after("import workspace_tui.protocol")
    assert not {"textual", "websockets", "asyncio"} & loaded


def test_the_chat_core_does_no_io():
    loaded = _loaded_after("import workspace_tui.core, workspace_tui.core.chat")
    assert not IO_MODULES & {name.partition(".")[0] for name in loaded}


def test_cli_group_does_not_import_textual():
    loaded = _loaded_after("import workspace_tui.cli")
    assert "textual" not in loaded


def test_version_runs_as_module():
    out = subprocess.run([sys.executable, "-m", "workspace_tui", "--version"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "workspace" in out.stdout


# Which subpackages each layer may import from; cli sits on top of everything.
ALLOWED = {
    "protocol": {"text_rules"},
    "text_rules": set(),
    "paths": set(),
    "lazy_imports": set(),
    "config": {"paths"},
    "core": {"protocol", "core"},
    "backends": {"protocol", "core", "backends"},
    "server": {"protocol", "paths", "core", "backends", "server"},
    "client": {"protocol", "text_rules", "paths", "lazy_imports", "client"},
    "tui": {"protocol", "text_rules", "paths", "config", "client", "tui"},
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


def _module_graph():
    """Every module of the package and the package modules it imports (relative imports too)."""
    import ast
    from pathlib import Path

    import workspace_tui

    root = Path(workspace_tui.__file__).parent
    modules = {}
    for path in root.rglob("*.py"):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = list(rel.parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        modules[".".join(parts)] = (path, is_package)
    graph = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                found = [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
            else:
                continue
            targets |= {t for t in found if t in modules and t != name}
        graph[name] = targets
    return graph


def test_no_module_imports_another_in_a_circle():
    graph = _module_graph()
    # A package's __init__ re-exporting its own modules is not a cycle worth reporting.
    edges = {m: {t for t in ts if not t.startswith(m + ".") and not m.startswith(t + ".")} for m, ts in graph.items()}
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert not cycles, "\n".join(cycles)

