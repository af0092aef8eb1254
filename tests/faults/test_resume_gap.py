"""A client that has not yet seen a single message must still resume without loss.

Found by the cutting proxy (seed 1234): a ``ChatClient`` built the way the
TUI builds it (no ``join_history``) that joined an empty workspace had no
resume point, so after a drop it reconnected with a plain join and got only
the last ``--history`` messages: whatever was sent before those, while it was
away, never arrived (all 150 with ``--history 0``, the oldest 50 with 100).
Fixed: a plain join takes the ``connected`` frame's ``lastMessageId`` (or the
store's beginning when it is empty) as the resume point.
"""

from __future__ import annotations

import pytest

from workspace_tui.client import ChatClient, HistoryReceived, Joined, MessageReceived

from tests.client.support import started
from tests.server.support import join

from .support import CuttingProxy, classify, client_view


@pytest.mark.parametrize("history", [0, 100])
async def test_resume_before_the_first_message_was_seen(server_factory, tmp_path, history):
    server = await server_factory(rate_limit=0, address_rate_limit=0, history=history)
    proxy = CuttingProxy(server.port, seed=0, max_cuts=0)  # a plain proxy we can cut by hand
    url = await proxy.start()
    reader = ChatClient(url, "reader", state_path=tmp_path / "reader.outbox", backoff_base=0.05, backoff_cap=0.1)
    rec = await started(reader)
    try:
        await rec.wait_event(HistoryReceived)  # joined an empty workspace
        await proxy.outage()  # the reader keeps retrying meanwhile
        writer = await join(server, "writer")
        texts = [f"w:{i:03d}" for i in range(150)]
        for t in texts:
            await writer.say(t)
        await writer.close()
        await proxy.start()
        await rec.wait_for(lambda r: len(r.of(Joined)) >= 2, timeout=15)
        await writer_done(rec, server)
        verdict = classify("reader", {"writer": texts}, client_view(rec))
    finally:
        await reader.close()
        await proxy.close()
    assert verdict.clean, str(verdict)


async def writer_done(rec, server) -> None:
    """Wait until the reader has had its history after the reconnect, plus a live round-trip."""
    await rec.wait_for(lambda r: len(r.of(HistoryReceived)) >= 2, timeout=15)
    probe = await join(server, "probe")
    await probe.say("probe")
    await probe.close()
    await rec.wait_event(MessageReceived, lambda e: e.message.text == "probe", timeout=15)
    rec.events[:] = [e for e in rec.events if not (isinstance(e, MessageReceived) and e.message.text == "probe")]
