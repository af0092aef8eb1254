"""``workspace send`` and ``workspace tail`` as real subprocesses against a real server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import datetime

from workspace_tui.client import ChatClient, HistoryReceived, Joined, MessageAcknowledged

from client.support import free_port, run_cli, start, started


async def cli(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_cli, *args, input=input)


async def stored_texts(url: str, tmp_path) -> list[str]:
    c = ChatClient(url, "auditor", state_path=tmp_path / "auditor.sqlite3", join_history=1000, reconnect=False)
    rec = await started(c)
    hist = await rec.wait_event(HistoryReceived)
    await c.close()
    return [m.text for m in hist.messages]


async def test_send_exit_0_silent_and_json(tmp_path):
    server = await start(tmp_path)
    try:
        r = await cli("send", "--url", server.url, "-u", "ann", "hello", "world")
        assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
        r = await cli("send", "--url", server.url, "-u", "ann", "--json", "as json")
        assert r.returncode == 0, r.stderr
        data = json.loads(r.stdout)
        assert data["text"] == "as json" and data["username"] == "ann" and data["id"].startswith("msg_")
        assert await stored_texts(server.url, tmp_path) == ["hello world", "as json"]
    finally:
        await server.close()


async def test_send_stdin_whole_and_lines(tmp_path):
    server = await start(tmp_path)
    try:
        r = await cli("send", "--url", server.url, "-u", "ann", input="line one\nline two\n")
        assert r.returncode == 0, r.stderr
        r = await cli("send", "--url", server.url, "-u", "ann", "--lines", "--json", input="a\n\n  \nb\nc\n")
        assert r.returncode == 0, r.stderr
        assert [json.loads(line)["text"] for line in r.stdout.splitlines()] == ["a", "b", "c"]
        assert await stored_texts(server.url, tmp_path) == ["line one\nline two", "a", "b", "c"]
    finally:
        await server.close()


async def test_send_exit_2_usage():
    r = await cli("send", "--lines", "text too")
    assert r.returncode == 2 and "--lines" in r.stderr
    r = await cli("send", "--username", "bad name!", "x")
    assert r.returncode == 2
    r = await cli("send", "--timeout", "0", "x")
    assert r.returncode == 2


async def test_send_exit_3_unreachable_and_message_not_kept(tmp_path):
    url = f"ws://127.0.0.1:{free_port()}/ws"
    r = await cli("send", "--url", url, "-u", "ann", "--timeout", "0.5", "nobody home")
    assert r.returncode == 3
    assert "unreachable" in r.stderr and "connection refused" in r.stderr
    check = ChatClient(url, "ann", reconnect=False)
    await check.start()
    assert check.outbox() == []  # reported as not sent, so it will not go out later by surprise
    await check.close()


async def test_send_exit_4_rejections(tmp_path):
    server = await start(tmp_path, token="tok", max_payload=1000)
    try:
        base = ("send", "--url", server.url, "-u", "ann")
        r = await cli(*base, "--token", "wrong", "hi")
        assert r.returncode == 4 and "401" in r.stderr
        r = await cli(*base, "--token", "tok", "\x1b[2J")
        assert r.returncode == 4 and "empty" in r.stderr
        r = await cli(*base, "--token", "tok", "y" * 2000)
        assert r.returncode == 4 and "too large" in r.stderr
        r = await cli(*base, "--token", "tok", input="")
        assert r.returncode == 4 and "empty" in r.stderr
        r = await cli(*base, "--token", "tok", "finally fine")
        assert r.returncode == 0, r.stderr
    finally:
        await server.close()


async def test_send_exit_4_rate_limited_beyond_timeout(tmp_path):
    server = await start(tmp_path, rate_limit=2)  # burst 2, then one every 30 s
    try:
        base = ("send", "--url", server.url, "-u", "ann")
        assert (await cli(*base, "one")).returncode == 0
        assert (await cli(*base, "two")).returncode == 0
        r = await cli(*base, "--timeout", "1", "three")
        assert r.returncode == 4 and "rate" in r.stderr
    finally:
        await server.close()


async def test_send_delivers_what_was_queued_before(tmp_path):
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ws"
    r = await cli("send", "--url", url, "-u", "ann", "--queue", "--timeout", "0.3", "first, queued")
    assert r.returncode == 0 and "outbox" in r.stderr
    server = await start(tmp_path, port=port)
    try:
        r = await cli("send", "--url", url, "-u", "ann", "second")
        assert r.returncode == 0, r.stderr
        assert await stored_texts(url, tmp_path) == ["first, queued", "second"]
    finally:
        await server.close()


async def test_tail_json_count_and_last(tmp_path):
    server = await start(tmp_path)
    try:
        for t in ("old 1", "old 2"):
            assert (await cli("send", "--url", server.url, "-u", "bob", t)).returncode == 0
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "workspace_tui", "tail", "--url", server.url, "-u", "tailer",
            "--json", "--last", "1", "--count", "2",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 15))
        assert first["text"] == "old 2"  # --last 1; the join history is printed before anything new
        sender = ChatClient(server.url, "bob", state_path=tmp_path / "bob.sqlite3")
        rec = await started(sender)
        await rec.wait_event(Joined)
        await sender.send("new 1")
        await sender.send("multi\nline \x1b]52;c;aGk=\x07text")
        await rec.wait_for(lambda r: len(r.of(MessageAcknowledged)) == 2)
        out, err = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode == 0, err
        rows = [json.loads(line) for line in out.decode().splitlines()]
        assert [r["text"] for r in rows] == ["new 1", "multi\nline text"]
        assert all(set(r) >= {"id", "userId", "username", "text", "createdAt"} for r in rows)
        await sender.close()
    finally:
        await server.close()


async def test_tail_readable_lines(tmp_path):
    server = await start(tmp_path)
    try:
        assert (await cli("send", "--url", server.url, "-u", "alice", "two\nlines")).returncode == 0
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "workspace_tui", "tail", "--url", server.url, "-u", "t", "--last", "5", "--count", "1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        head = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
        cont = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
        stamp = head[:5]
        datetime.strptime(stamp, "%H:%M")
        assert head[5:] == "  alice: two\n"
        assert cont == " " * len("00:00  alice: ") + "lines\n"
        proc.terminate()
        await proc.wait()
    finally:
        await server.close()


async def test_tail_unreachable_with_timeout_exits_3(tmp_path):
    url = f"ws://127.0.0.1:{free_port()}/ws"
    r = await cli("tail", "--url", url, "-u", "t", "--timeout", "0.5")
    assert r.returncode == 3
    assert "retrying" in r.stderr and "giving up" in r.stderr


async def test_tail_ctrl_c_exits_0_quietly(tmp_path):
    import signal

    server = await start(tmp_path)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "workspace_tui", "tail", "--url", server.url, "-u", "t", "--json", "--last", "1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        assert (await cli("send", "--url", server.url, "-u", "alice", "ping")).returncode == 0
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 15)
        assert json.loads(line)["text"] == "ping"
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 10)
        assert proc.returncode == 0 and err == b""
    finally:
        await server.close()


async def test_tail_resumes_across_a_server_kill_without_gaps_or_repeats(tmp_path):
    from client.support import ServerProcess

    srv = ServerProcess(tmp_path / "server.sqlite3")
    srv.start()
    writer = ChatClient(srv.url, "writer", state_path=tmp_path / "w.sqlite3", backoff_base=0.05, backoff_cap=0.2)
    wrec = await started(writer)
    await writer.send("seed")
    await wrec.wait_event(MessageAcknowledged)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workspace_tui", "tail", "--url", srv.url, "-u", "tailer", "--json", "--last", "1", "--count", "6",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        assert json.loads(await asyncio.wait_for(proc.stdout.readline(), 15))["text"] == "seed"  # the tail is in
        await writer.send("t0")
        assert json.loads(await asyncio.wait_for(proc.stdout.readline(), 15))["text"] == "t0"
        await writer.send("t1")
        assert json.loads(await asyncio.wait_for(proc.stdout.readline(), 15))["text"] == "t1"
        srv.kill9()
        srv.start()  # the tail backs off for up to ~0.5 s; the writer is quicker
        await wrec.wait_for(lambda r: len(r.of(Joined)) == 2)
        for t in ("t2", "t3", "t4", "t5"):
            await writer.send(t)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 20)
        except asyncio.TimeoutError:
            proc.kill()
            out, err = await proc.communicate()
            raise AssertionError((out, err))
        assert proc.returncode == 0, err
        assert [json.loads(line)["text"] for line in out.decode().splitlines()] == ["t2", "t3", "t4", "t5"]
        assert b"retrying" in err
    finally:
        if proc.returncode is None:
            proc.kill()
        await writer.close()
        srv.stop()


async def test_tail_events_adds_presence_and_typing(tmp_path):
    server = await start(tmp_path)
    try:
        assert (await cli("send", "--url", server.url, "-u", "seed", "seed")).returncode == 0
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "workspace_tui", "tail", "--url", server.url, "-u", "t",
            "--json", "--events", "--last", "1", "--count", "1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        # The join history is printed once the tail is in.
        assert json.loads(await asyncio.wait_for(proc.stdout.readline(), 15))["text"] == "seed"
        nora = ChatClient(server.url, "nora", state_path=tmp_path / "n.sqlite3")
        nrec = await started(nora)
        await nrec.wait_event(Joined)
        await nora.set_typing(True)
        await nora.send("hi")
        out, err = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode == 0, err
        rows = [json.loads(line) for line in out.decode().splitlines()]
        assert rows[-1]["text"] == "hi" and "type" not in rows[-1]
        nora_id = rows[-1]["userId"]
        presence = {"type": "presence:update", "userId": nora_id, "username": "nora", "status": "online", "connections": 1}
        assert presence in rows
        assert {"type": "typing:indicator", "userId": nora_id, "username": "nora", "isTyping": True} in rows
        await nora.close()
    finally:
        await server.close()


async def test_send_429_says_why_without_waiting_out_the_timeout(tmp_path):
    from websockets.asyncio.client import connect

    server = await start(tmp_path, max_connections_per_user=1)
    try:
        async with connect(f"{server.url}?username=ann") as hog:
            await hog.recv()
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            r = await cli("send", "--url", server.url, "-u", "ann", "--timeout", "8", "hi")
            assert r.returncode == 3
            assert "too many connections" in r.stderr and "429" in r.stderr
            assert loop.time() - t0 < 6  # the 30 s wait would pass the timeout: said at once
    finally:
        await server.close()


class AckEatingProxy:
    """A TCP proxy that passes everything until it sees the server's ``message:new``: it drops
    that (the ack is lost), cuts the connection, and refuses new ones until :meth:`heal`."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.eating = True
        self.eaten = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def heal(self) -> None:
        self.eating = False

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.eating and self.eaten:  # "down" until healed
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self._writers.update(pair)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, downstream: bool) -> None:
            try:
                while data := await src.read(65536):
                    # Frames from the server are unmasked JSON (no compression): the ack is visible.
                    if downstream and self.eating and b'"message:new"' in data:
                        self.eaten += 1
                        break
                    dst.write(data)
                    await dst.drain()
            except (OSError, RuntimeError):
                pass
            finally:
                for w in pair:
                    w.transport.abort()

        await asyncio.gather(pipe(reader, up_writer, False), pipe(up_reader, writer, True))

    async def close(self) -> None:
        for w in self._writers:
            w.transport.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def test_send_exit_3_when_the_ack_is_lost_keeps_the_message_and_never_duplicates(tmp_path):
    """Stored, ack lost, server unreachable: exit 3, kept in the outbox; the next send completes it once."""
    server = await start(tmp_path)
    proxy = AckEatingProxy(server.port)
    await proxy.start()
    try:
        r = await cli("send", "--url", proxy.url, "-u", "ann", "--timeout", "2", "stored, ack lost")
        assert r.returncode == 3, r.stderr
        assert "may have been stored" in r.stderr and "Do not send them again" in r.stderr
        assert proxy.eaten == 1
        assert await stored_texts(server.url, tmp_path) == ["stored, ack lost"]  # the server did store it
        check = ChatClient(proxy.url, "ann", reconnect=False)
        await check.start()
        assert [e.text for e in check.outbox()] == ["stored, ack lost"]  # kept, not failed
        await check.close()

        proxy.heal()
        r = await cli("send", "--url", proxy.url, "-u", "ann", "next one")
        assert r.returncode == 0, r.stderr
        # The kept message was resent with its clientMsgId: the server answered with the stored copy.
        assert await stored_texts(server.url, tmp_path) == ["stored, ack lost", "next one"]
        check = ChatClient(proxy.url, "ann", reconnect=False)
        await check.start()
        assert check.outbox() == []
        await check.close()
    finally:
        await proxy.close()
        await server.close()
