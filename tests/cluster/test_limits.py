"""The per-user connection cap and the message rate limit hold across nodes."""

from __future__ import annotations

from tests.server.support import join, refused, url_for


async def test_connection_cap_is_global(node_factory):
    a, b = await node_factory(max_connections_per_user=2), await node_factory(max_connections_per_user=2)
    first = await join(a, "alice")
    second = await join(b, "alice")
    status, body = await refused(url_for(a, "alice"))
    assert status == 429 and "too many connections" in body
    status, _ = await refused(url_for(b, "alice"))
    assert status == 429
    await first.close()
    # the slot is free again, on either node
    third = await _join_eventually(a, "alice")
    await second.close()
    await third.close()


async def _join_eventually(node, name):
    import asyncio

    from websockets.exceptions import InvalidStatus

    deadline = asyncio.get_running_loop().time() + 5
    while True:
        try:
            return await join(node, name)
        except InvalidStatus:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


async def test_rate_limit_is_global(node_factory):
    a, b = await node_factory(rate_limit=4), await node_factory(rate_limit=4)
    on_a, on_b = await join(a, "alice"), await join(b, "alice")
    await on_a.say("1")
    await on_b.say("2")
    await on_a.say("3")
    await on_b.say("4")
    # the bucket (4 per minute, burst 4) is shared: the fifth is refused whichever node takes it
    await on_a.send({"type": "message:send", "text": "5", "clientMsgId": "m5"})
    err = await on_a.expect("error", clientMsgId="m5")
    assert err["code"] == "rate_limited"
    await on_b.send({"type": "message:send", "text": "6", "clientMsgId": "m6"})
    err = await on_b.expect("error", clientMsgId="m6")
    assert err["code"] == "rate_limited" and err["retryAfterMs"] > 0
    await on_a.close()
    await on_b.close()
