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
