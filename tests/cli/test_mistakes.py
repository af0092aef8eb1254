"""The first hour of a user, as real subprocesses: every mistake gets one clear line and the right exit code.

A bad ``--db``, a port in use, a config file with a typo, a wrong ``--url``, a
server that is not there, ``chat`` in a pipe, ``send --lines`` past the rate
limit, and the help that should have said it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workspace_tui.backends.sqlite import SQLiteBackend

from client.support import TerminalProcess, free_port, run_cli, start


def serve(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return run_cli("serve", "--host", "127.0.0.1", "--port", "0", *args, timeout=timeout)


def _one_clear_line(r: subprocess.CompletedProcess[str], needle: str) -> None:
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("Error:"), r.stderr  # one line, nothing else
    assert needle in r.stderr, r.stderr


def _damaged_store(path: Path) -> None:
    store = SQLiteBackend(path)
    store.insert([store.new_message("alice", f"message {i} " + "x" * 3000) for i in range(300)])
    store.shut()
    with open(path, "r+b") as f:  # garbage over pages in the middle of the file
        f.seek(4096 * 40)
        f.write(b"\xde\xad" * 6000)


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: p.write_text("notes\n"), "it is not a workspace store"),
        (lambda p: p.mkdir(), "it is a folder"),
        (lambda p: p.write_bytes(os.urandom(20000)), "it is not a workspace store"),
        (_damaged_store, "the database is damaged"),
    ],
    ids=["text file", "directory", "not sqlite", "damaged"],
)
def test_a_bad_db_is_one_line_naming_the_store(tmp_path, make, reason):
    path = tmp_path / "store.db"
    make(path)
    r = serve("--db", str(path))
    _one_clear_line(r, f"cannot open the store {path}: {reason}")
    assert "listen" not in r.stderr  # not blamed on the port


def test_a_damaged_store_says_what_to_do(tmp_path):
    path = tmp_path / "store.db"
    _damaged_store(path)
    r = serve("--db", str(path))
    assert "move it aside" in r.stderr and f"sqlite3 {path} .recover" in r.stderr


def test_a_db_in_a_missing_folder_or_under_a_file_is_refused(tmp_path):
    missing = tmp_path / "nope" / "deeper" / "store.db"
    r = serve("--db", str(missing))
    _one_clear_line(r, f"cannot open the store {missing}: the folder {missing.parent} does not exist")
    assert not missing.parent.exists()  # not created behind the user's back
    afile = tmp_path / "afile"
    afile.write_text("x")
    r = serve("--db", str(afile / "store.db"))
    _one_clear_line(r, f"{afile} is a file, not a folder")


def test_port_in_use_says_so_and_suggests_another_port(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = run_cli("serve", "--host", "127.0.0.1", "--port", str(port), "--db", str(tmp_path / "s.db"))
        _one_clear_line(r, f"cannot listen on 127.0.0.1:{port}: the address is already in use")
        assert "--port" in r.stderr
        out = _in_a_terminal(["chat", "--serve", "--port", str(port), "--db", str(tmp_path / "c.db"), "-u", "ann"])
        assert f"cannot listen on 127.0.0.1:{port}: the address is already in use" in out, out
        assert "--port" in out and "Errno" not in out


def _in_a_terminal(args: list[str], timeout: float = 20.0) -> str:
    """Run ``workspace ARGS`` on a pseudo-terminal until it exits; what it wrote."""
    term = TerminalProcess(args)
    term.wait(timeout)
    term.close()
    return term.output()


def _write_config(isolated_dirs, text: str) -> Path:
    folder = Path(os.environ["WORKSPACE_CONFIG_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.toml"
    path.write_text(text)
    return path


def test_config_file_typos_are_reported_with_the_nearest_key(isolated_dirs):
    path = _write_config(isolated_dirs, 'prot = 4001\n[serve]\nrate_limt = 5\n[chta]\nbell = false\n')
    r = run_cli("serve")
    assert r.returncode == 2, r.stderr
    assert str(path) in r.stderr
    assert "unknown key 'prot'; did you mean 'port'?" in r.stderr
    assert "unknown key 'rate_limt' in [serve]; did you mean 'rate_limit'?" in r.stderr
    assert "unknown table [chta]; did you mean [chat]?" in r.stderr


def test_a_bad_value_in_the_config_file_says_it_came_from_the_file(isolated_dirs):
    path = _write_config(isolated_dirs, '[serve]\nport = "four thousand"\n')
    r = run_cli("serve")
    assert r.returncode == 2
    assert str(path) in r.stderr and "[serve] port = 'four thousand'" in r.stderr
    assert "env var" not in r.stderr  # not blamed on --port or WORKSPACE_PORT


def test_a_broken_config_file_does_not_stop_help(isolated_dirs):
    path = _write_config(isolated_dirs, "broken = [\n")
    for args in (["--help"], ["serve", "--help"], ["send", "--help"]):
        r = run_cli(*args)
        assert r.returncode == 0 and "Usage:" in r.stdout, (args, r.stderr)
    r = run_cli("serve")
    assert r.returncode == 2 and f"cannot read config file {path}" in r.stderr


@pytest.mark.parametrize(
    "url, suggestion",
    [
        ("http://127.0.0.1:4000/ws", "did you mean ws://127.0.0.1:4000/ws?"),
        ("https://chat.example.net/ws", "did you mean wss://chat.example.net/ws?"),
        ("ws://127.0.0.1:4000", "the chat is at ws://127.0.0.1:4000/ws"),
        ("127.0.0.1:4000", "did you mean ws://127.0.0.1:4000/ws?"),
    ],
)
def test_a_wrong_url_is_a_usage_error_with_the_right_form(url, suggestion):
    for command in ("send", "tail", "who"):
        r = run_cli(command, "--url", url, "-u", "ann", *(["hi"] if command == "send" else []))
        assert r.returncode == 2, (command, r.stderr)
        assert suggestion in r.stderr and "username=" not in r.stderr, r.stderr


async def test_send_says_it_is_retrying_and_gives_up_at_the_timeout():
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workspace_tui", "send", "--url", f"ws://127.0.0.1:{port}/ws", "-u", "ann",
        "--timeout", "4", "hello", stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
    )
    t0 = time.monotonic()
    assert proc.stderr is not None
    first = await asyncio.wait_for(proc.stderr.readline(), 10)
    told_after = time.monotonic() - t0
    assert b"connection refused" in first and b"retrying" in first, first
    assert told_after < 2.5, told_after  # said at once, not after the timeout
    rest = await asyncio.wait_for(proc.stderr.read(), 10)
    code = await proc.wait()
    took = time.monotonic() - t0
    assert code == 3 and b"unreachable within 4 s" in rest
    assert 3.9 <= took < 5.5, took  # gives up at --timeout, not before
    assert b"?" not in first + rest  # no internal query string in what it says


def test_chat_without_a_terminal_refuses_with_exit_2():
    r = run_cli("chat", "-u", "ann")  # stdin, stdout and stderr are pipes here
    assert r.returncode == 2 and "chat needs a terminal" in r.stderr
    assert "\x1b" not in r.stdout + r.stderr  # no escape codes written into the pipe


def test_chat_with_term_dumb_refuses_with_exit_2(monkeypatch):
    monkeypatch.setenv("TERM", "dumb")
    r = run_cli("chat", "-u", "ann")
    assert r.returncode == 2 and "TERM=dumb" in r.stderr


async def test_send_lines_past_the_rate_limit_paces_itself_and_shows_progress(tmp_path):
    server = await start(tmp_path, rate_limit=20)
    try:
        lines = "".join(f"line {i}\n" for i in range(1, 27))
        r = await asyncio.to_thread(run_cli, "send", "--url", server.url, "-u", "pacer", "--lines",
                                    input=lines, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "26 message(s) at 20 per minute (the server's limit)" in r.stderr
        assert "delivered" in r.stderr  # progress while it waits for the limit
        assert server.backend.count() == 26
    finally:
        await server.close()


async def test_send_lines_that_give_up_say_exactly_which_lines_went_out(tmp_path):
    server = await start(tmp_path, rate_limit=6)  # 6 at once, then one every 10 s
    try:
        lines = "".join(f"line {i}\n" for i in range(1, 11))
        r = await asyncio.to_thread(run_cli, "send", "--url", server.url, "-u", "pacer", "--lines",
                                    "--timeout", "2", input=lines, timeout=60)
        assert r.returncode == 4, r.stderr
        assert "delivered 1-6 of 10 lines; not delivered: 7-10" in r.stderr
        assert server.backend.count() == 6
    finally:
        await server.close()


def test_help_names_the_config_file_data_dir_and_exit_codes(isolated_dirs):
    r = run_cli("--help")
    assert str(Path(os.environ["WORKSPACE_CONFIG_DIR"]) / "config.toml") in r.stdout
    assert "WORKSPACE_CONFIG_DIR" in r.stdout and "WORKSPACE_DATA_DIR" in r.stdout
    assert os.environ["WORKSPACE_DATA_DIR"] in r.stdout
    for command in ("serve", "chat"):
        text = run_cli(command, "--help").stdout
        assert "Exit codes:" in text and "  2  " in text, command
    chat = run_cli("chat", "--help").stdout
    assert "WORKSPACE_PORT" in chat and "0<=x<=65535" in chat and "WORKSPACE_DB" in chat


def test_a_token_in_the_url_is_not_repeated_in_what_send_says():
    port = free_port()
    r = run_cli("send", "--url", f"ws://127.0.0.1:{port}/ws?token=s3cret-value", "-u", "ann", "--timeout", "1", "hi")
    assert r.returncode == 3 and "connection refused" in r.stderr
    assert "s3cret-value" not in r.stderr, r.stderr
