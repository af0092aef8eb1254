"""``workspace login`` and ``workspace key show`` as real subprocesses against a real server.

One name on two devices (two data directories): the one-liners share the stored
key by themselves, the second device is refused with what to run, and
``key show`` piped into ``login --import`` makes the name work there too.
"""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys

from workspace_tui.client import keys

from client.support import run_cli, start


async def cli(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_cli, *args, input=input)


def use_device(monkeypatch, tmp_path, label: str) -> None:
    """The next subprocesses run as another device: their own data directory."""
    monkeypatch.setenv("WORKSPACE_DATA_DIR", str(tmp_path / f"device-{label}"))


async def test_key_show_and_login_import_put_a_name_on_a_second_device(tmp_path, monkeypatch):
    server = await start(tmp_path)
    try:
        me = ("--url", server.url, "--username", "alice")
        use_device(monkeypatch, tmp_path, "desk")
        r = await cli("key", "show", *me)
        assert r.returncode == 1 and r.stdout == "" and "this device has no key for alice" in r.stderr

        # send, who and tail share the one key made on first use, without the user doing anything.
        r = await cli("send", *me, "hello from the desk")
        assert r.returncode == 0, r.stderr
        r = await cli("who", *me)
        assert r.returncode == 0, r.stderr
        tail = subprocess.Popen(
            [sys.executable, "-m", "workspace_tui", "tail", *me, "--count", "1", "--timeout", "10"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            for n in range(40):  # until tail has joined and seen one (it exits after --count 1)
                if tail.poll() is not None:
                    break
                assert (await cli("send", *me, f"ping {n}")).returncode == 0
            out, err = await asyncio.to_thread(tail.communicate, timeout=20)
        finally:
            if tail.poll() is None:
                tail.kill()
                tail.wait()
        assert tail.returncode == 0 and "alice: ping" in out, err
        r = await cli("key", "show", *me)
        assert r.returncode == 0, r.stderr
        key = r.stdout.strip()
        assert r.stdout == key + "\n" and keys.is_key(key)  # the key alone on stdout: it can be piped
        assert "login --import" in r.stderr

        use_device(monkeypatch, tmp_path, "laptop")
        r = await cli("send", *me, "hello from the laptop")
        assert r.returncode == 4
        assert "alice is claimed on this server" in r.stderr and "workspace login --import" in r.stderr
        assert "Traceback" not in r.stderr

        r = await cli("login", "--import", *me, input=keys.new_key() + "\n")
        assert r.returncode == 4 and "that key is not alice's" in r.stderr and "nothing saved" in r.stderr

        r = await cli("login", "--import", *me, input=key + "\n")
        assert r.returncode == 0, r.stderr
        saved = tmp_path / "device-laptop" / "keys" / keys.server_folder(server.url) / "alice"
        assert str(saved) in r.stdout
        assert saved.read_text() == key + "\n" and stat.S_IMODE(os.stat(saved).st_mode) == 0o600
        r = await cli("send", *me, "hello from the laptop")
        assert r.returncode == 0, r.stderr
    finally:
        await server.close()


async def test_login_redeems_an_invite_and_saves_the_key_only_then(tmp_path, monkeypatch):
    db = tmp_path / "server.sqlite3"
    server = await start(tmp_path, auth="invite", db_path=db)
    try:
        from workspace_tui.backends.admin import AccountAdmin

        admin = AccountAdmin(db_path=str(db))  # what `workspace users add alice` does
        invite = admin.add("alice")
        admin.close()
        me = ("--url", server.url, "--username", "alice")

        r = await cli("send", *me, "before the invite")
        assert r.returncode == 4 and "workspace login" in r.stderr and "invite" in r.stderr

        r = await cli("login", *me, input="x" * 40 + "\n")  # the right form, not the invite
        assert r.returncode == 4 and "nothing saved" in r.stderr
        r = await cli("login", *me, input=invite + "\n")
        assert r.returncode == 0, r.stderr
        assert "invite redeemed" in r.stdout
        r = await cli("send", *me, "after the invite")
        assert r.returncode == 0, r.stderr
        r = await cli("login", *me, input=invite + "\n")  # an invite works once
        assert r.returncode == 4 and "already used" in r.stderr
        r = await cli("send", *me, "still mine")  # and the failed attempt did not replace the key
        assert r.returncode == 0, r.stderr
    finally:
        await server.close()


async def test_login_reads_no_secret_from_the_command_line_and_refuses_what_is_not_one():
    r = await cli("login", "--username", "alice", "some-invite-code-on-the-command-line")
    assert r.returncode == 2 and "unexpected extra argument" in r.stderr.lower()
    r = await cli("login", "--username", "alice", input="\n")
    assert r.returncode == 2 and "no invite given" in r.stderr
    r = await cli("login", "--import", "--username", "alice", input="hunter2\n")
    assert r.returncode == 2 and "not a key" in r.stderr
