"""``workspace serve`` as a real process: the printed line, SIGTERM, kill -9 durability, TLS, port in use."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from .support import TIMEOUT

LINE_RE = re.compile(r"^workspace server listening on (wss?://127\.0\.0\.1:(\d+)/ws) \(store: (.+)\)$")


class Proc:
    def __init__(self, *args: str, env: dict[str, str] | None = None):
        self.p = subprocess.Popen(
            [sys.executable, "-m", "workspace_tui", "serve", "--host", "127.0.0.1", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        line = self.p.stdout.readline().strip()
        m = LINE_RE.match(line)
        assert m, (line, self.p.stderr.read() if self.p.poll() is not None else "")
        self.url, self.port, self.store = m[1], int(m[2]), m[3]

    def stop(self, sig=signal.SIGTERM) -> int:
        self.p.send_signal(sig)
        return self.p.wait(10)


async def first_frames(url: str, username: str, **kw):
    ws = await connect(f"{url}?username={username}", open_timeout=TIMEOUT, **kw)
    connected = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    history = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    return ws, connected, history


async def test_prints_one_line_and_sigterm_closes_with_1001(tmp_path):
    db = tmp_path / "serve.sqlite3"
    proc = Proc("--db", str(db))
    try:
        assert proc.store == str(db)
        ws, connected, _ = await first_frames(proc.url, "alice")
        assert connected["type"] == "connected"
        await ws.send(json.dumps({"type": "message:send", "text": "kept"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["type"] == "message:new"
        proc.p.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(TIMEOUT):
                async for _ in ws:
                    pass
        except Exception:
            pass
        assert ws.close_code == 1001
        assert proc.p.wait(10) == 0
        assert proc.p.stdout.read() == ""  # exactly one line on stdout
        assert "listening on" not in proc.p.stderr.read()  # ... and not repeated by the log on the terminal
    finally:
        if proc.p.poll() is None:
            proc.p.kill()
    proc2 = Proc("--db", str(db))
    ws, _, history = await first_frames(proc2.url, "bob")
    assert [m["text"] for m in history["messages"]] == ["kept"]
    await ws.close()
    assert proc2.stop(signal.SIGINT) == 0


async def test_a_message_anyone_saw_survives_kill_9(tmp_path):
    db = tmp_path / "crash.sqlite3"
    proc = Proc("--db", str(db))
    ws, _, _ = await first_frames(proc.url, "alice")
    await ws.send(json.dumps({"type": "message:send", "text": "durable", "clientMsgId": "d1"}))
    seen = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert seen["data"]["text"] == "durable"
    proc.p.kill()
    proc.p.wait(10)
    proc2 = Proc("--db", str(db))
    ws2, _, history = await first_frames(proc2.url, "alice")
    assert history["messages"] == [seen["data"]]
    # and the exactly-once key survived too
    await ws2.send(json.dumps({"type": "message:send", "text": "durable", "clientMsgId": "d1"}))
    assert json.loads(await asyncio.wait_for(ws2.recv(), TIMEOUT)) == seen
    await ws2.close()
    assert proc2.stop() == 0


async def test_flags_come_from_the_environment(tmp_path):
    proc = Proc(env={"WORKSPACE_DB": str(tmp_path / "env.sqlite3"), "WORKSPACE_RATE_LIMIT": "7"})
    try:
        assert proc.store == str(tmp_path / "env.sqlite3")
        ws, connected, _ = await first_frames(proc.url, "alice")
        assert connected["limits"]["messagesPerMinute"] == 7
        await ws.close()
    finally:
        assert proc.stop() == 0


def test_port_in_use_is_a_readable_error(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-m", "workspace_tui", "serve", "--port", str(port), "--db", ":memory:"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert out.returncode != 0
    assert "already in use" in out.stderr
    assert "Traceback" not in out.stderr


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.skipif(not any((Path(p) / "openssl").exists() for p in os.environ.get("PATH", "").split(":")), reason="no openssl")
async def test_tls(server_factory, tmp_path):
    cert, key = _self_signed(tmp_path)
    server = await server_factory(certfile=cert, keyfile=key)
    assert server.url.startswith("wss://")
    ctx = ssl.create_default_context(cafile=str(cert))
    ws, connected, _ = await first_frames(server.url, "alice", ssl=ctx)
    assert connected["username"] == "alice"
    await ws.send(json.dumps({"type": "message:send", "text": "secret"}))
    assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["data"]["text"] == "secret"
    await ws.close()


async def test_flags_come_from_the_config_file(tmp_path, isolated_dirs):
    config_dir = Path(os.environ["WORKSPACE_CONFIG_DIR"])
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "config.toml").write_text(f'[serve]\nrate_limit = 9\nhistory = 3\ndb = "{tmp_path / "cfg.sqlite3"}"\n')
    proc = Proc()
    try:
        assert proc.store == str(tmp_path / "cfg.sqlite3")
        ws, connected, _ = await first_frames(proc.url, "alice")
        assert connected["limits"]["messagesPerMinute"] == 9
        await ws.close()
    finally:
        assert proc.stop() == 0


async def test_default_store_is_in_the_data_dir():
    proc = Proc()
    try:
        assert proc.store == str(Path(os.environ["WORKSPACE_DATA_DIR"]) / "workspace.sqlite3")
        assert Path(proc.store).exists()
    finally:
        assert proc.stop() == 0


async def test_tls_from_the_command_line(tmp_path):
    cert, key = _self_signed(tmp_path)
    proc = Proc("--db", ":memory:", "--certfile", str(cert), "--keyfile", str(key))
    try:
        assert proc.url.startswith("wss://")
        ws, connected, _ = await first_frames(proc.url, "alice", ssl=ssl.create_default_context(cafile=str(cert)))
        assert connected["username"] == "alice"
        await ws.close()
    finally:
        assert proc.stop() == 0


@pytest.mark.parametrize("choice", ["asyncio", "uvloop", "auto"])
async def test_event_loop_choice(tmp_path, choice):
    if choice != "asyncio":
        pytest.importorskip("uvloop")  # the speedups extra (in the test extra, so CI runs these)
    proc = Proc("--db", str(tmp_path / "loop.sqlite3"), "--loop", choice)
    try:
        a, _, _ = await first_frames(proc.url, "alice")
        b, _, _ = await first_frames(proc.url, "bob")
        await a.send(json.dumps({"type": "message:send", "text": "over " + choice}))
        for ws in (a, b):
            while (frame := json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)))["type"] != "message:new":
                pass
            assert frame["data"]["text"] == "over " + choice
    finally:
        code = proc.stop()
    assert code == 0
    assert f"event loop: {'asyncio' if choice == 'asyncio' else 'uvloop'}" in proc.p.stderr.read()
