#!/usr/bin/env python3
"""Where an idle connection's memory goes in the server: objects and bytes per connection.

Runs the server in this process (the same settings as ``connections_bench.py``:
limits off) and opens CONNECTIONS quiet connections from a client process
(``connections_bench``'s thin clients). Between a snapshot taken after a warm-up
and one taken with them all open it reports, per connection:

* Python objects the garbage collector tracks, by type (count and
  ``sys.getsizeof`` bytes, a ``__dict__`` counted separately as ``dict``);
* bytes allocated (``tracemalloc``), by the line of our code, websockets or
  asyncio that allocated them (the innermost frame in those packages).

The RSS per connection is ``connections_bench.py``'s figure: here it would
count tracemalloc's own records too.

    python benchmarks/connection_memory.py                  # 2,000 connections, asyncio loop
    python benchmarks/connection_memory.py --loop uvloop --connections 5000
    python benchmarks/connection_memory.py --free-request   # what emptying the handshake request saves

Timing under tracemalloc is not timing: this script measures memory only.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import sys
import tempfile
import tracemalloc
import types
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from connections_bench import loop_factory, raise_fd_limit, worker_main  # noqa: E402

from workspace_tui.server import ServerConfig, start_server  # noqa: E402

# The innermost frame in one of these names the allocation (not the standard library's helpers).
OURS = ("workspace_tui", "websockets", "asyncio", "uvloop")


def census() -> Counter[str]:
    """Count and bytes of every gc-tracked object, by type name."""
    out: Counter[str] = Counter()
    for o in gc.get_objects():
        name = type(o).__qualname__
        out[name + " #"] += 1
        out[name] += sys.getsizeof(o)
    return out


def blame(trace: tracemalloc.Traceback) -> str:
    for frame in reversed(trace):  # a Traceback runs from the oldest frame to the newest
        path = frame.filename
        for pkg in OURS:
            at = path.rfind(f"/{pkg}/")
            if at >= 0:
                return f"{path[at + 1 :]}:{frame.lineno}"
    return f"{trace[-1].filename.rsplit('/', 1)[-1]}:{trace[-1].lineno}"


SKIP = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.CodeType, types.FrameType)


def reachable(root: object, stop: set[int]) -> dict[int, tuple[object, str]]:
    """Objects reachable from *root* (not through *stop*), each with the attribute path it was first reached by."""
    seen: dict[int, tuple[object, str]] = {}
    todo: list[tuple[object, str]] = [(root, "")]
    while todo:
        obj, path = todo.pop()
        if id(obj) in seen or id(obj) in stop or isinstance(obj, SKIP):
            continue
        seen[id(obj)] = (obj, path)
        # unnamed referents first: the stack pops the named attributes (and their paths) before them
        todo.extend((r, path) for r in gc.get_referents(obj))
        for name in getattr(type(obj), "__slots__", ()):
            if hasattr(obj, name):
                todo.append((getattr(obj, name), f"{path}.{name}"))
        d = getattr(obj, "__dict__", None)
        if isinstance(d, dict):
            todo.append((d, f"{path}.__dict__"))
            todo.extend((v, f"{path}.{k}") for k, v in d.items())
    return seen


def anatomy(server: object, a: object, b: object) -> dict[str, dict[str, int]]:
    """What connection *a* owns (reachable from it, not from connection *b*), by first attribute and type."""
    loop = asyncio.get_running_loop()
    stop = {id(server), id(loop)}
    mine = reachable(a, stop | {id(b)})
    theirs = reachable(b, stop | {id(a)})
    out: dict[str, dict[str, int]] = {}
    for key, (obj, path) in mine.items():
        if key in theirs or key == id(a):
            continue
        head = ".".join(path.split(".")[1:3]) or "(the Connection)"
        group = out.setdefault(head, {})
        name = type(obj).__qualname__
        group[name] = group.get(name, 0) + sys.getsizeof(obj)
    out.setdefault("(the Connection)", {})["Connection"] = sys.getsizeof(a)
    return dict(sorted(out.items(), key=lambda kv: -sum(kv[1].values())))


def by_blame(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> Counter[str]:
    def total(s: tracemalloc.Snapshot) -> Counter[str]:
        c: Counter[str] = Counter()
        for stat in s.statistics("traceback"):
            c[blame(stat.traceback)] += stat.size
        return c

    grown = total(after)
    grown.subtract(total(before))
    return grown


def free_request_after_handshake() -> None:
    """What-if, in this process only: empty the handshake's Request once the connection is open.

    websockets' ``ServerProtocol.parse`` keeps the Request it parsed in a local of its generator
    for the connection's whole life; the server has the same object (the event it was handed)."""
    from workspace_tui.server.app import Server

    accept = Server._accept

    def _accept(self, peer, request, session):  # noqa: ANN001, ANN202
        accept(self, peer, request, session)
        request.headers.clear()
        request.path = ""

    Server._accept = _accept  # type: ignore[method-assign]


async def probe(n: int, warm: int) -> dict:
    tmp = tempfile.mkdtemp(prefix="workspace-mem-")
    config = ServerConfig(
        host="127.0.0.1", port=0, db_path=Path(tmp) / "mem.sqlite3", rate_limit=0, max_connections_per_user=0,
        address_limits=False, address_rate_limit=0, max_pending_handshakes=0, claims_per_hour=0, idle_timeout=0,
    )
    server = await start_server(config)
    loop = asyncio.get_running_loop()
    ctx = multiprocessing.get_context("spawn")

    async def clients(first: int, count: int):  # noqa: ANN202
        mine, theirs = ctx.Pipe()
        proc = ctx.Process(target=worker_main, daemon=True,
                           args=(theirs, server.url, first, count, True, 200, ["127.0.0.1"], "asyncio"))
        proc.start()
        mine.send(("open",))
        kind, opened, _s, errors = await loop.run_in_executor(None, mine.recv)
        assert opened == count, errors
        return mine, proc

    async def settle() -> None:
        await asyncio.sleep(1.0)
        gc.collect()

    warm_pipe, warm_proc = await clients(10_000_000, warm)  # one-time caches, interned names, pools
    await settle()
    tracemalloc.start(12)
    await settle()
    types0, snap0, conns0 = census(), tracemalloc.take_snapshot(), len(server.connections)
    pipe, proc = await clients(0, n)
    await settle()
    types1, snap1 = census(), tracemalloc.take_snapshot()
    held = len(server.connections) - conns0
    some = [c for c in server.connections if c.conn is not None and c.conn.session.username.startswith("h1")][:2]
    one = anatomy(server, some[0], some[1])
    tracemalloc.stop()

    types1.subtract(types0)
    lines = by_blame(snap0, snap1)
    traced = sum(lines.values())
    files: Counter[str] = Counter()
    for k, v in lines.items():
        files[k.rsplit(":", 1)[0]] += v
    for p, pr in ((pipe, proc), (warm_pipe, warm_proc)):
        p.send(("arm", b"-"))
        p.recv()
        p.send(("collect",))
        p.recv()
        p.send(("close",))
        p.recv()
        pr.join(10)
    await server.close()
    per = max(1, held)
    kinds = sorted({k[:-2] for k in types1 if k.endswith(" #")}, key=lambda k: -types1[k])
    return {
        "connections": held,
        "traced_bytes_per_connection": round(traced / per),
        "objects_per_connection": {
            k: {"count": round(types1[k + " #"] / per, 2), "bytes": round(types1[k] / per)}
            for k in kinds if types1[k + " #"] / per >= 0.5
        },
        "one_connection": one,
        "allocations_per_connection": {
            k: round(v / per) for k, v in lines.most_common() if abs(v) / per >= 16
        },
        "allocations_per_connection_by_file": {
            k: round(v / per) for k, v in files.most_common() if abs(v) / per >= 16
        },
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--warm", type=int, default=200, help="connections opened (and kept) before the first snapshot")
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    ap.add_argument("--free-request", action="store_true",
                    help="what-if: empty the handshake request after the upgrade (patched in this process only)")
    ap.add_argument("--json", help="write the figures here too")
    a = ap.parse_args()
    raise_fd_limit()
    if a.free_request:
        free_request_after_handshake()
    with asyncio.Runner(loop_factory=loop_factory(a.loop)) as runner:
        out = runner.run(probe(a.connections, a.warm))
    out = {"loop": a.loop, "free_request": a.free_request, **out}
    print(f"loop {a.loop}{', request freed' if a.free_request else ''}, {out['connections']} connections: {out['traced_bytes_per_connection']} B traced "
          "per connection")
    print("\nobjects per connection (gc-tracked; getsizeof):")
    for k, v in out["objects_per_connection"].items():
        print(f"  {v['count']:6} x {k:40} {v['bytes']:6} B")
    print("\none connection's own objects (not shared with another), by attribute:")
    for head, kinds in out["one_connection"].items():
        detail = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
        print(f"  {sum(kinds.values()):6} B  {head:34} {detail}")
    print("\nbytes allocated per connection, by file:")
    for k, v in out["allocations_per_connection_by_file"].items():
        print(f"  {v:6} B  {k}")
    print("\nbytes allocated per connection, by line:")
    for k, v in out["allocations_per_connection"].items():
        print(f"  {v:6} B  {k}")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
