"""The incrementally maintained roster JSON always equals the visible users' entries."""

from __future__ import annotations

import json
import random

from workspace_tui.server.presence import Presence


class _Peer:
    pass


def test_roster_parts_match_the_visible_users_under_churn():
    presence = Presence()
    presence.TAIL_MAX = 5  # merge often, so every path (base, tail, merge, invalidation) runs
    rng = random.Random(1)
    for step in range(3000):
        u = presence.user(f"u{rng.randrange(40)}")
        op = rng.random()
        if op < 0.5:
            u.peers.append(_Peer())  # type: ignore[arg-type]
        elif op < 0.8 and u.peers:
            u.peers.pop()
        else:
            u.status = rng.choice(["online", "away", "offline"])
        presence.refresh(u)
        got = sorted(json.dumps(e) for e in json.loads(b"[" + b"".join(presence.roster_parts()) + b"]"))
        want = sorted(json.dumps(v.roster_entry().to_wire()) for v in presence.visible.values())
        assert got == want, step
        assert len(got) == presence.connected_users
