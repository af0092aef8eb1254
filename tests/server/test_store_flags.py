"""``--retention``, ``--max-store-bytes`` and ``--min-free-disk`` as a user types them, on a real ``serve``."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from workspace_tui.backends.sqlite import SQLiteBackend
from workspace_tui.cli.sizes import parse_age, parse_size
from workspace_tui.protocol import ChatMessage, iso_timestamp, make_message_id, user_id_for

from client.support import run_cli

from .support import TIMEOUT
from .test_serve_command import Proc, first_frames


@pytest.mark.parametrize("text, size", [
    ("0", 0), ("4096", 4096), ("500MB", 500_000_000), ("2GB", 2_000_000_000), ("1GiB", 1 << 30),
    ("256MiB", 256 << 20), ("1.5G", int(1.5 * (1 << 30))), (" 10 kb ", 10_000),
])
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text, seconds", [("0", 0), ("30d", 30 * 86400), ("12h", 43200), ("90m", 5400),
                                           ("2w", 14 * 86400), ("1.5d", 1.5 * 86400), ("45s", 45)])
def test_ages(text, seconds):
    assert parse_age(text) == seconds


@pytest.mark.parametrize("args, needle", [
    (["--retention", "30"], "'30' is not an age: write it like 30d"),
    (["--retention", "soon"], "is not an age"),
    (["--max-store-bytes", "2 gigs"], "'2 gigs' is not a size: write it like 500MB"),
    (["--min-free-disk", "-1GB"], "is not a size"),
    (["--max-store-bytes", "1GB", "--broker-max-mb", "5"], "--broker-max-mb is the old name of --max-store-bytes"),
])
def test_a_bad_value_is_a_usage_error_that_says_how_to_write_it(args, needle):
    r = run_cli("serve", "--port", "0", *args, timeout=20)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and "Traceback" not in r.stderr


async def test_serve_applies_the_flags(tmp_path):
    db = tmp_path / "flags.sqlite3"
    store = SQLiteBackend(db)
    week_ago = time.time_ns() // 1_000_000 - 7 * 86_400_000
    store.insert([ChatMessage(make_message_id(week_ago + i, 0), user_id_for("old"), "old", f"old {i}",
                              iso_timestamp(week_ago + i)) for i in range(10)])
    store.shut()
    proc = Proc("--db", str(db), "--retention", "2d", "--max-store-bytes", "500MB", "--min-free-disk", "1000TB")
    try:
        ws, _, history = await first_frames(proc.url, "alice")
        assert [m["text"] for m in history["messages"]] == ["old 9"]  # older than 2 days: gone (but the newest)
        await ws.send(json.dumps({"type": "message:send", "text": "hi", "clientMsgId": "m1"}))
        frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert frame["type"] == "error" and frame["code"] == "unavailable"  # no disk has 1000 TB free
        await ws.close()
    finally:
        assert proc.stop() == 0
    assert "below --min-free-disk" in proc.p.stderr.read()
