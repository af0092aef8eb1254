"""The console script's start-up and exit trims: the collector is off while a one-liner imports,
and a one-liner that has closed everything ends without the interpreter's shutdown. Both must
leave what the user sees alone: output complete, exit codes the same."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

from client.support import free_port, start

# The console script, with a witness: atexit handlers run only when the interpreter shuts down.
SCRIPT = (
    "import atexit, sys\n"
    "atexit.register(lambda: sys.stderr.write('interpreter shutdown\\n'))\n"
    "sys.argv = ['workspace', *sys.argv[1:]]\n"
    "from workspace_tui.cli import run\n"
    "run()\n"
)


def console(*args: str, input: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout block-buffered
    return subprocess.run([sys.executable, "-c", SCRIPT, *args], input=input, capture_output=True, text=True,
                          timeout=30, env=env)


async def test_send_ends_without_the_shutdown_and_its_output_complete(tmp_path):
    server = await start(tmp_path)
    try:
        lines = "\n".join(f"line {i} " + "x" * 200 for i in range(40))  # more than one buffer of JSON
        r = await asyncio.to_thread(console, "send", "--url", server.url, "--username", "ann", "--lines", "--json",
                                    input=lines)
    finally:
        await server.close()
    assert r.returncode == 0, r.stderr
    assert "interpreter shutdown" not in r.stderr
    assert [json.loads(line)["text"] for line in r.stdout.splitlines()] == lines.splitlines()


def test_an_unreachable_send_keeps_its_exit_code_and_says_why():
    r = console("send", "--url", f"ws://127.0.0.1:{free_port()}/ws", "--username", "ann", "--timeout", "0.5", "hi")
    assert r.returncode == 3
    assert "server unreachable within 0.5 s" in r.stderr
    assert "interpreter shutdown" not in r.stderr


def test_a_usage_error_exits_the_usual_way():
    r = console("send", "--username", "ann", "--lines", "some text")
    assert r.returncode == 2
    assert "--lines reads stdin" in r.stderr
    assert "interpreter shutdown" in r.stderr  # before the command imported anything: nothing skipped


def _run(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    return out.stdout.split()


def test_the_collector_stays_off_for_a_one_liner_until_it_has_imported():
    code = (
        "import gc; gc.disable()\n"  # as run() starts
        "from workspace_tui import cli\n"
        "cli.main.get_command(None, 'send'); print(gc.isenabled())\n"
        "cli.one_shot(); print(gc.isenabled(), gc.get_freeze_count() > 0)\n"
    )
    assert _run(code) == ["False", "True", "True"]


def test_every_other_command_gets_the_collector_back_when_looked_up():
    code = (
        "import gc; gc.disable()\n"
        "from workspace_tui import cli\n"
        "cli.main.get_command(None, 'users'); print(gc.isenabled())\n"
    )
    assert _run(code) == ["True"]
