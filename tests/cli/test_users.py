"""``workspace users`` on a real SQLite store while a real server runs on it."""

from __future__ import annotations

import json

from tests.client.support import run_cli
from tests.server.test_identity import enter, new_key, refusal


async def test_an_admin_manages_names_on_the_store_of_a_running_server(server_factory, tmp_path):
    db = str(tmp_path / "team.sqlite3")
    server = await server_factory(db_path=db, auth="invite")
    added = run_cli("users", "add", "dana", "--db", db)
    assert added.returncode == 0, added.stderr
    invite = added.stdout.strip()
    assert len(invite) == 43 and "One-time invite for dana" in added.stderr
    again = run_cli("users", "add", "DANA", "--db", db)  # the same name, whatever its case
    assert again.returncode == 1 and "dana already exists" in again.stderr
    listed = run_cli("users", "list", "--json", "--db", db)
    assert [json.loads(line)["state"] for line in listed.stdout.splitlines()] == ["invited"]
    key = new_key()
    await (await enter(server, "dana", key, invite)).close()
    table = run_cli("users", "list", "--db", db)
    assert table.stdout.splitlines()[1].split()[:2] == ["dana", "claimed"]
    reset = run_cli("users", "reset", "dana", "--db", db)
    assert reset.returncode == 0 and len(reset.stdout.strip()) == 43
    assert (await refusal(server, "dana", key))[:2] == (401, "invite_required")  # the old key is out
    gone = run_cli("users", "remove", "dana", "--db", db)
    assert gone.returncode == 0 and "removed dana" in gone.stderr
    missing = run_cli("users", "remove", "dana", "--db", db)
    assert missing.returncode == 1 and "no account named dana" in missing.stderr
    assert (await refusal(server, "dana", key))[:2] == (403, "not_member")
