"""Names across nodes: a claim on one node holds on every node, admins work on Redis, verified travels."""

from __future__ import annotations

import subprocess
import sys

from tests.server.support import join
from tests.server.test_identity import enter, new_key, refusal

from workspace_tui.backends.admin import AccountAdmin


async def test_a_name_claimed_on_one_node_needs_its_key_on_every_node(node_factory):
    a, b = await node_factory(), await node_factory()
    key = new_key()
    alice = await enter(a, "alice", key)
    assert alice.connected["verified"] is True
    assert (await refusal(b, "alice"))[:2] == (401, "key_required")
    assert (await refusal(b, "ALICE", new_key()))[:2] == (401, "wrong_key")
    watcher = await join(b, "watcher")
    there = await enter(b, "alice", key)  # her second device, on the other node
    assert there.connected["verified"] is True
    roster = {u["username"]: u.get("verified", False) for u in there.connected["users"]}
    assert roster["alice"] is True and roster["watcher"] is False
    said = await alice.say("from node a")
    seen = await watcher.expect("message:new", text="from node a")
    assert said["data"]["verified"] is True and seen["data"]["verified"] is True
    late = await join(b, "late")
    assert [m.get("verified") for m in late.history["messages"] if m["text"] == "from node a"] == [True]
    for c in (alice, there, watcher, late):
        await c.close()


async def test_workspace_users_works_on_redis_while_the_nodes_run(node_factory, redis_server, tmp_path):
    a = await node_factory(auth="invite")
    env_cmd = [sys.executable, "-m", "workspace_tui", "users"]
    add = subprocess.run([*env_cmd, "add", "erin", "--broker", redis_server.url], capture_output=True, text=True,
                         timeout=30)
    assert add.returncode == 0, add.stderr
    invite = add.stdout.strip()
    assert "One-time invite for erin" in add.stderr and len(invite) == 43
    assert (await refusal(a, "erin"))[:2] == (401, "invite_required")
    b = await node_factory(auth="invite")
    key = new_key()
    erin = await enter(b, "erin", key, invite)
    assert erin.connected["verified"] is True
    listed = subprocess.run([*env_cmd, "list", "--json", "--broker", redis_server.url], capture_output=True,
                            text=True, timeout=30)
    assert '"username": "erin", "state": "claimed"' in listed.stdout
    admin = AccountAdmin(broker=redis_server.url)
    admin.reset("erin")
    admin.close()
    assert (await refusal(a, "erin", key))[:2] == (401, "invite_required")
    await erin.close()
