"""Secrets out of `ps`: --token-file for serve and the clients, and a warning for a literal --token."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

WARNING = "visible to every local user"


def secret_file(tmp_path: Path, text: str = "s3cret\n", mode: int = 0o600) -> Path:
    path = tmp_path / "token"
    path.write_text(text)
    path.chmod(mode)
    return path


class Serve:
    """`workspace serve` in a subprocess, with its stderr kept (the warnings are there)."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workspace_tui", "serve", "--port", "0", "--db", str(tmp_path / "s.sqlite3"),
             "--log-level", "warning", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {})},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = re.search(r"ws://[\w.]+:\d+/ws", line)
        if not m:
            self.stop()
            raise AssertionError(f"serve did not start: {line!r} {self.stderr!r}")
        self.url = m.group(0)
        self.stderr = ""

    def stop(self) -> str:
        self.proc.terminate()
        _, self.stderr = self.proc.communicate(timeout=10)
        return self.stderr


async def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "workspace_tui", *args], input="", capture_output=True, text=True,
        timeout=30, env={**os.environ, **(env or {})},
    )


async def test_a_token_file_for_serve_and_the_clients(tmp_path):
    token = secret_file(tmp_path)
    serve = await asyncio.to_thread(Serve, tmp_path, "--token-file", str(token))
    try:
        r = await cli("send", "--url", serve.url, "-u", "ann", "--token-file", str(token), "hello")
        assert (r.returncode, r.stderr) == (0, "")
        tail = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "workspace_tui", "tail", "--url", serve.url, "-u", "bob", "--token-file", str(token),
            "--last", "1", "--count", "1", "--timeout", "10", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        first = await asyncio.wait_for(tail.stdout.readline(), 20)  # history: proves tail got in
        assert "hello" in first.decode()
        await cli("send", "--url", serve.url, "-u", "ann", "--token-file", str(token), "again")
        out, err = await asyncio.wait_for(tail.communicate(), 20)
        assert tail.returncode == 0 and "again" in out.decode(), err
        r = await cli("who", "--url", serve.url, "-u", "bob", env={"WORKSPACE_TOKEN_FILE": str(token)})
        assert r.returncode == 0, r.stderr
        r = await cli("send", "--url", serve.url, "-u", "ann", "no token")
        assert r.returncode == 4  # the file really was the token
        r = await cli("send", "--url", serve.url, "-u", "ann", "--token", "s3cret", "literal")
        assert r.returncode == 0 and WARNING in r.stderr and "--token-file" in r.stderr
        r = await cli("send", "--url", serve.url, "-u", "ann", "from env", env={"WORKSPACE_TOKEN": "s3cret"})
        assert (r.returncode, r.stderr) == (0, "")
    finally:
        stderr = await asyncio.to_thread(serve.stop)
    assert WARNING not in stderr


async def test_serve_warns_about_a_literal_token_but_not_the_variable(tmp_path):
    serve = await asyncio.to_thread(Serve, tmp_path, "--token", "s3cret")
    stderr = await asyncio.to_thread(serve.stop)
    assert WARNING in stderr and "--token-file" in stderr and "WORKSPACE_TOKEN" in stderr
    serve = await asyncio.to_thread(Serve, tmp_path, env={"WORKSPACE_TOKEN": "s3cret"})
    r = await cli("send", "--url", serve.url, "-u", "ann", "x")
    assert r.returncode == 4  # the variable set the token
    stderr = await asyncio.to_thread(serve.stop)
    assert WARNING not in stderr


async def test_token_file_mistakes(tmp_path):
    token = secret_file(tmp_path)
    r = await cli("serve", "--port", "0", "--token", "x", "--token-file", str(token))
    assert r.returncode == 2 and "not both" in r.stderr
    r = await cli("send", "-u", "ann", "--token-file", str(tmp_path / "missing"), "x")
    assert r.returncode == 2 and "cannot read" in r.stderr
    empty = tmp_path / "empty"
    empty.write_text("\n")
    r = await cli("serve", "--port", "0", "--token-file", str(empty))
    assert r.returncode == 2 and "on one line" in r.stderr
    two = tmp_path / "two"
    two.write_text("a\nb\n")
    r = await cli("send", "-u", "ann", "--token-file", str(two), "x")
    assert r.returncode == 2 and "on one line" in r.stderr


async def test_a_token_file_others_can_read_is_warned_about(tmp_path):
    token = secret_file(tmp_path, mode=0o644)
    serve = await asyncio.to_thread(Serve, tmp_path, "--token-file", str(token))
    stderr = await asyncio.to_thread(serve.stop)
    assert "can be read by other users" in stderr
