"""The key store: one key per server and name, private to its owner, never half written."""

from __future__ import annotations

import os
import stat

import pytest

from workspace_tui import paths
from workspace_tui.client import keys, refusals


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_key_is_256_random_bits_in_base64url():
    made = {keys.new_key() for _ in range(50)}
    assert len(made) == 50
    for key in made:
        assert keys.is_key(key) and len(key) == 43
    assert not keys.is_key("short") and not keys.is_key("x" * 42 + "!")


@pytest.mark.parametrize(
    "url, folder",
    [
        ("ws://127.0.0.1:4000/ws", "127.0.0.1_4000"),
        ("ws://Chat.Example.ORG/ws?token=x", "chat.example.org_80"),
        ("wss://chat.example.org/ws", "chat.example.org_443"),
        ("wss://chat.example.org:8443/chat/ws", "chat.example.org_8443"),
        ("ws://[::1]:4000/ws", "--1_4000"),
    ],
)
def test_the_server_folder_is_host_and_port(url, folder):
    assert keys.server_folder(url) == folder


def test_key_for_makes_one_saves_it_private_and_returns_it_again():
    url = "ws://127.0.0.1:4000/ws"
    assert keys.load_key(url, "Alice") is None
    key = keys.key_for(url, "Alice")
    path = keys.key_path(url, "alice")
    assert path == paths.data_dir() / "keys" / "127.0.0.1_4000" / "alice"
    assert path.read_text() == key + "\n"
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700 and _mode(path.parent.parent) == 0o700
    assert keys.key_for(url, "ALICE") == key  # the same name whatever the case
    assert keys.key_for(url, "bob") != key
    assert keys.key_for("ws://127.0.0.1:4001/ws", "alice") != key  # another server, another key
    assert sorted(p.name for p in path.parent.iterdir()) == ["alice", "bob"]


def test_saving_replaces_the_key_and_leaves_no_temporary_file():
    url = "ws://127.0.0.1:4000/ws"
    first = keys.key_for(url, "alice")
    other = keys.new_key()
    path = keys.save_key(url, "alice", other)
    assert keys.load_key(url, "alice") == other != first
    assert sorted(p.name for p in path.parent.iterdir()) == ["alice"]
    assert _mode(path) == 0o600


def test_a_saved_key_stays_private_under_a_lax_umask():
    old = os.umask(0)
    try:
        path = keys.save_key("ws://h:1/ws", "alice", keys.new_key())
    finally:
        os.umask(old)
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700


def test_a_damaged_key_file_is_an_error_naming_the_file_not_a_new_key():
    url = "ws://127.0.0.1:4000/ws"
    path = keys.save_key(url, "alice", keys.new_key())
    path.write_text("not a key\n")
    with pytest.raises(keys.KeyStoreError, match=str(path)):
        keys.key_for(url, "alice")
    assert path.read_text() == "not a key\n"  # left for the user to look at


@pytest.mark.parametrize("name", ["..", ".", "a/b", ""])
def test_a_name_cannot_point_outside_the_key_folder(name):
    with pytest.raises(ValueError):
        keys.key_path("ws://h:1/ws", name)


def test_save_refuses_what_is_not_a_key():
    with pytest.raises(ValueError):
        keys.save_key("ws://h:1/ws", "alice", "hunter2")
    assert not (paths.data_dir() / "keys").exists()


def test_every_refusal_code_has_a_sentence_with_what_to_run():
    url = "ws://chat.example.org:4000/ws"
    for code in refusals.REFUSALS:
        said = refusals.describe(code, "alice", url, 30)
        assert said is not None and said.code == code
        assert "alice" in said.reason and said.detail
    assert "workspace key show --url ws://chat.example.org:4000/ws --username alice" in refusals.describe(
        "wrong_key", "alice", url).reason
    assert "workspace login --import" in refusals.describe("key_required", "alice", url).reason
    assert "workspace login --url" in refusals.describe("invite_required", "alice", url).reason
    assert "30 s" in refusals.describe("throttled", "alice", url, 30).reason
    # The default server needs no --url in the advice.
    assert "--url" not in refusals.describe("invite_required", "alice", "ws://127.0.0.1:4000/ws").reason
    assert refusals.describe("something_new", "alice", url) is None


def test_retry_after_in_seconds():
    assert refusals.retry_after_seconds("12") == 12
    assert refusals.retry_after_seconds(" 1.5 ") == 1.5
    assert refusals.retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert refusals.retry_after_seconds(None) is None
    assert refusals.retry_after_seconds("-3") is None
