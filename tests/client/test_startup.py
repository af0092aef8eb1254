"""What a one-liner pays before it runs: modules it does not need stay unimported."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_modules_send_does_not_use_wait_until_read():
    code = (
        "import sys, workspace_tui.client, workspace_tui.cli.oneliners\n"
        "print(type(sys.modules['importlib.metadata']).__name__, type(sys.modules['urllib.request']).__name__)\n"
        "print(*(m in sys.modules for m in ('zipfile', 'http.client', 'textual', 'rich')))\n"
    )
    assert _run(code).splitlines() == ["_Deferred _Deferred", "False False False False"]


def test_importlib_metadata_still_works_after_the_placeholder():
    code = (
        "import workspace_tui.client, websockets, importlib.metadata\n"
        "from importlib.metadata import version\n"
        "print(importlib.metadata.version('websockets') == websockets.__version__ == version('websockets'))\n"
        "import importlib, sys; print(type(sys.modules['importlib.metadata']).__name__, importlib.metadata.__name__)\n"
    )
    assert _run(code).splitlines() == ["True", "module importlib.metadata"]


def test_urllib_request_still_works_after_the_placeholder():
    code = (
        "import workspace_tui.client, urllib.request\n"
        "from urllib.request import getproxies\n"
        "print(isinstance(urllib.request.getproxies(), dict), getproxies is urllib.request.getproxies)\n"
    )
    assert _run(code) == "True True"


def test_shutil_waits_until_read_and_still_works():
    code = (
        "import os, sys, workspace_tui.cli, workspace_tui.config, workspace_tui.paths\n"
        "workspace_tui.paths.data_dir()\n"  # platformdirs, which imports tempfile, which imports shutil
        "import tempfile\n"
        "print(type(sys.modules['shutil']).__name__, 'bz2' in sys.modules, 'lzma' in sys.modules)\n"
        "d = tempfile.TemporaryDirectory(); open(os.path.join(d.name, 'f'), 'w').close(); d.cleanup()\n"
        "import shutil; print(os.path.exists(d.name), shutil.which('sh') is not None, type(shutil).__name__)\n"
    )
    assert _run(code).splitlines() == ["_Deferred False False", "False True module"]


def test_the_protocol_compiles_its_patterns_on_first_use():
    code = (
        "from workspace_tui import protocol as p\n"
        "print(p._compiled.cache_info().currsize)\n"
        "print(p.sanitize_text('\\x1b[31mred\\x07'), p.message_id_key('msg_0000000000001_000002'))\n"
        "print(p._compiled.cache_info().currsize)\n"
    )
    assert _run(code).splitlines() == ["0", "red (1, 2)", "3"]
