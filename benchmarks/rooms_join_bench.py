"""What a join costs with many users and rooms: bytes of ``connected`` and time to it.

    python benchmarks/rooms_join_bench.py [--users 10000] [--rooms 100] [--online 1000] [--joins 20]

Plants a SQLite store: ``--users`` accounts-to-be spread over ``--rooms`` rooms (each room gets
users/rooms members), the joining user in every room, 50 messages per room (some mentioning them)
and a read position half way through each room. Starts a real server on 127.0.0.1 port 0, holds
``--online`` other users connected, then joins ``--joins`` times and reports the median bytes of
``connected`` (and of the join's history frame) and the time from opening the TCP connection to
``connected``. Real sockets, a real store; nothing is mocked.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from websockets.asyncio.client import connect  # noqa: E402

from workspace_tui.backends.sqlite import SQLiteBackend  # noqa: E402
from workspace_tui.protocol import ChatMessage, iso_timestamp, make_message_id, name_key, user_id_for  # noqa: E402
from workspace_tui.server import ServerConfig, start_server  # noqa: E402

ME = "joiner"


def plant(db: Path, users: int, rooms: int) -> None:
    store = SQLiteBackend(db)
    con = store.db
    per_room = max(1, users // rooms)
    now = time.time_ns() // 1_000_000 - 86_400_000
    with con:
        for r in range(rooms):
            room = f"room{r:03d}"
            con.execute("INSERT INTO rooms (id, kind, topic, created_by, created_ms) VALUES (?, 'public', ?, ?, ?)",
                        (room, f"topic of {room}", ME, now))
            names = [ME, *(f"u{(r * per_room + i) % users:05d}" for i in range(per_room))]
            con.executemany("INSERT OR IGNORE INTO members (room, name_key, username, joined_ms) VALUES (?, ?, ?, ?)",
                            [(room, name_key(n), n, now) for n in names])
    seq = 0
    for r in range(rooms):
        room = f"room{r:03d}"
        batch = []
        for i in range(50):
            seq += 1
            text = f"@{ME} look at this ({i})" if i % 10 == 0 else f"message {i} in {room}"
            who = f"u{(r + i) % users:05d}"
            batch.append(ChatMessage(make_message_id(now + seq, 0), user_id_for(who), who, text,
                                     iso_timestamp(now + seq), None, False, room))
        store.insert(batch)
        with con:
            con.execute("INSERT INTO reads (name_key, room, message_id) VALUES (?, ?, ?)",
                        (name_key(ME), room, batch[24].id))
    store.shut()


async def hold(url: str, n: int) -> list:
    conns = []
    for i in range(n):
        ws = await connect(f"{url}?username=online{i:05d}&history=0", max_size=None)
        await ws.recv()
        await ws.recv()
        conns.append(ws)
    return conns


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--rooms", type=int, default=100)
    ap.add_argument("--online", type=int, default=1000)
    ap.add_argument("--joins", type=int, default=20)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rooms-bench-"))
    db = tmp / "bench.sqlite3"
    plant(db, a.users, a.rooms)
    server = await start_server(ServerConfig(host="127.0.0.1", port=0, db_path=db, address_limits=False,
                                             max_connections_per_user=0))
    held = await hold(server.url, a.online)
    sizes, histories, times, rooms_bytes = [], [], [], []
    for _ in range(a.joins):
        t = time.perf_counter()
        ws = await connect(f"{server.url}?username={ME}", subprotocols=["workspace.v1"], max_size=None)
        raw = await ws.recv()
        times.append((time.perf_counter() - t) * 1000)
        history = await ws.recv()
        frame = json.loads(raw)
        sizes.append(len(raw.encode()))
        rooms_bytes.append(len(json.dumps(frame["rooms"], separators=(",", ":")).encode()))
        histories.append(len(history.encode()))
        await ws.close()
    for ws in held:
        await ws.close()
    await server.close()
    rooms = frame["rooms"]
    print(f"users {a.users:,} in {a.rooms} rooms, {a.online:,} online; the joiner is in {len(rooms) - 1} rooms + general")
    print(f"unread per room {rooms[1]['unread']}, mentions {rooms[1]['mentions']}; users listed "
          f"{len(frame['users'])} (complete: {frame.get('usersComplete', True)})")
    print("| figure | median |")
    print("| --- | ---: |")
    print(f"| `connected` bytes | {statistics.median(sizes):,.0f} |")
    print(f"| ... of which `rooms` | {statistics.median(rooms_bytes):,.0f} |")
    print(f"| join `history` frame bytes | {statistics.median(histories):,.0f} |")
    print(f"| TCP connect to `connected`, ms | {statistics.median(times):.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
