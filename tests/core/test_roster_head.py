"""The capped roster ``connected`` carries stays exactly the first ROSTER_CAP online users, whatever
order joins, leaves and status changes come in (it is kept, not rebuilt, when a change is past the cap)."""

from __future__ import annotations

from hypothesis import given, strategies as st

from workspace_tui.core.presence import Presence

CAP = 4
ops = st.lists(st.tuples(st.sampled_from(["join", "leave", "away", "back"]), st.integers(0, 9)), max_size=60)


def fresh_head(presence: Presence) -> bytes:
    return b",".join(list(presence._entries.values())[:CAP])


@given(ops)
def test_the_capped_roster_is_always_the_first_users_online(steps):
    presence = Presence()
    presence.ROSTER_CAP = CAP
    for op, i in steps:
        name = f"user{i}"
        u = presence.user(name, 0.0)
        if op == "join" and not u.conns:
            u.conns = (object(),)  # type: ignore[assignment]
        elif op == "leave":
            u.conns = ()
        elif op == "away":
            u.status = "away"
        elif op == "back":
            u.status = "online"
        presence.refresh(name, u.user_id)
        assert presence.roster_head() == [fresh_head(presence)]
        assert presence.roster_complete() == (presence.connected_users <= CAP)
