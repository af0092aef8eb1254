"""A real browser against a real server: a page from another local origin opens a WebSocket
with the protocol document's own example client. Refused unless its origin is allowed.

The page comes from a tiny http.server on 127.0.0.1 (another port: another origin) and
POSTs what happened back to it; headless Chromium loads it, one start per case. Skipped
only when Chromium is absent and WORKSPACE_REQUIRE_BROWSER is unset (CI sets it).
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from .support import join

HERE = Path(__file__).parent
CLIENT_JS = HERE / "browser" / "workspace_websocket.js"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

if CHROMIUM is None and not os.environ.get("WORKSPACE_REQUIRE_BROWSER"):
    pytest.skip(
        "chromium is not installed (apt-get install chromium; set WORKSPACE_REQUIRE_BROWSER=1 to fail instead)",
        allow_module_level=True,
    )

PAGE = """<!doctype html>
<html><body><script>
{client}
const report = (what) => fetch('/result', {{method: 'POST', body: JSON.stringify(what)}});
const client = new WorkspaceWebSocket({url}, 'browser');
client.maxReconnectAttempts = 0;  // one attempt: the test wants to see this one refused
const handle = client.handleMessage.bind(client);
client.handleMessage = (message) => {{
  handle(message);
  if (message.type === 'connected') {{
    client.sendMessage('hello from a browser');
    report({{event: 'connected'}});
  }}
}};
client.connect();
let opened = false;
client.ws.addEventListener('open', () => {{ opened = true; }});
client.ws.addEventListener('close', (e) => report({{event: 'close', opened, code: e.code}}));
</script></body></html>
"""


# A browser cannot set headers on a WebSocket: the key travels as a subprotocol (docs/protocol.md).
KEY_PAGE = """<!doctype html>
<html><body><script>
const report = (what) => fetch('/result', {{method: 'POST', body: JSON.stringify(what)}});
const ws = new WebSocket({url} + '?username=kay', ['workspace.v1', 'key.' + {key}]);
ws.onmessage = (e) => {{
  const frame = JSON.parse(e.data);
  if (frame.type === 'connected') report({{event: 'connected', verified: frame.verified, protocol: ws.protocol}});
}};
ws.onclose = (e) => report({{event: 'close', code: e.code}});
</script></body></html>
"""


class PageServer:
    """Serves the page on 127.0.0.1, port 0, in a thread; keeps what the page POSTs. Set
    :attr:`ws_url` (the server to connect to) before the browser loads it."""

    def __init__(self) -> None:
        self.ws_url = ""
        self.key = ""  # set: the page proves a name with this key instead of running the document's client
        self.results: list[dict] = []
        self.arrived = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b""
                if self.path == "/":
                    if outer.key:
                        body = KEY_PAGE.format(url=json.dumps(outer.ws_url), key=json.dumps(outer.key)).encode()
                    else:
                        body = PAGE.format(client=CLIENT_JS.read_text(), url=json.dumps(outer.ws_url)).encode()
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length") or 0), 64 * 1024)
                outer.results.append(json.loads(self.rfile.read(length)))
                outer.arrived.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Browser:
    """Headless Chromium showing one page, in a process group of its own."""

    def __init__(self, url: str, profile: Path) -> None:
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", f"--user-data-dir={profile}", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


async def visit(pages: PageServer, tmp_path: Path) -> dict:
    """Load the page in Chromium until it reports how its connection went: 'connected' or 'close'."""
    browser = Browser(pages.origin + "/", tmp_path / "profile")

    def wait() -> dict:
        while True:
            if not pages.arrived.wait(30):
                raise AssertionError(f"the page reported nothing more within 30 s: {pages.results}")
            pages.arrived.clear()
            for r in pages.results:
                if r["event"] in ("connected", "close"):
                    return r

    try:
        return await asyncio.to_thread(wait)
    finally:
        browser.close()


@pytest.fixture
def pages():
    page_server = PageServer()
    yield page_server
    page_server.close()


async def test_a_page_from_another_origin_is_refused(server, pages, tmp_path):
    pages.ws_url = server.url
    result = await visit(pages, tmp_path)
    assert result == {"event": "close", "opened": False, "code": 1006}
    assert server.handshake_rejections == {403: 1}  # refused for its origin, nothing else
    assert "connected" not in [r["event"] for r in pages.results]


async def test_a_page_from_an_allowed_origin_chats(server_factory, pages, tmp_path):
    server = await server_factory(allow_origins=(pages.origin,))
    pages.ws_url = server.url
    watcher = await join(server, "watcher")
    try:
        assert await visit(pages, tmp_path) == {"event": "connected"}
        message = await watcher.expect("message:new", text="hello from a browser")
        assert message["data"]["username"] == "browser"
        assert not server.handshake_rejections
    finally:
        await watcher.close()


async def test_a_page_proves_its_name_with_a_key_in_the_subprotocols(server_factory, pages, tmp_path):
    from .test_identity import new_key, refusal

    server = await server_factory(allow_origins=(pages.origin,))
    pages.ws_url = server.url
    pages.key = new_key()
    assert await visit(pages, tmp_path) == {"event": "connected", "verified": True, "protocol": "workspace.v1"}
    assert (await refusal(server, "kay"))[:2] == (401, "key_required")  # the page's claim holds


def test_the_page_uses_the_protocol_documents_own_client():
    repo = HERE.parents[1]
    seeds = [p / "shared" / "seed" / "websocket-protocol.md" for p in (repo.parent, repo.parent.parent)]
    seed = next((p for p in seeds if p.exists()), None)
    if seed is None:
        pytest.skip("../shared/seed/websocket-protocol.md is not beside this checkout")
    doc = seed.read_text()
    start = doc.index("class WorkspaceWebSocket {")
    class_text = doc[start:doc.index("// Usage", start)].rstrip()
    ours = CLIENT_JS.read_text()
    assert ours[ours.index("class WorkspaceWebSocket {"):].rstrip() == class_text
