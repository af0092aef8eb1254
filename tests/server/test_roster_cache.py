"""The incrementally maintained roster JSON always equals the visible users' entries."""

from __future__ import annotations

import json
import random

from workspace_tui.core.presence import Presence


class _Peer:
    pass


def test_roster_parts_match_the_visible_users_under_churn():
    presence = Presence()
    presence.TAIL_MAX = 5  # merge often, so every path (base, tail, merge, invalidation) runs
    rng = random.Random(1)
    for step in range(3000):
        u = presence.user(f"u{rng.randrange(40)}", now=0.0)
        op = rng.random()
        if op < 0.5:
            u.conns += (_Peer(),)  # type: ignore[operator]
        elif op < 0.8 and u.conns:
            u.conns = u.conns[:-1]
        else:
            u.status = rng.choice(["online", "away", "offline"])
        presence.refresh(u.username, u.user_id)
        got = sorted(json.dumps(e) for e in json.loads(b"[" + b"".join(presence.roster_parts()) + b"]"))
        visible = [v for v in presence.users.values() if v.visible_here]
        want = sorted(
            json.dumps({"userId": v.user_id, "username": v.username, "status": v.status, "connections": len(v.conns)}
                       | ({"verified": True} if v.verified else {}))
            for v in visible
        )
        assert got == want, step
        assert len(got) == presence.connected_users
