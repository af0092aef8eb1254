"""Fixtures shared by every test.

Every test gets its own data and config directories, so no test reads or
writes the real user's store, outbox or config file.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    base = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("WORKSPACE_DATA_DIR", str(base / "data"))
    monkeypatch.setenv("WORKSPACE_CONFIG_DIR", str(base / "config"))
    for var in ("WORKSPACE_URL", "WORKSPACE_USERNAME", "WORKSPACE_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    return base


# -- server fixtures -----------------------------------------------------------
# A real server on 127.0.0.1 port 0 with a real SQLite file in tmp_path.


@pytest.fixture
async def server_factory(tmp_path):
    """``await server_factory(**overrides)`` starts a server; all are closed after the test.

    Overrides are :class:`~workspace_tui.server.ServerConfig` fields; ``db_path``
    defaults to a fresh file in ``tmp_path`` (pass the same path again to restart).
    """
    from workspace_tui.server import ServerConfig, start_server

    started = []

    async def factory(**overrides):
        overrides.setdefault("host", "127.0.0.1")
        overrides.setdefault("port", 0)
        overrides.setdefault("db_path", tmp_path / "server.sqlite3")
        srv = await start_server(ServerConfig(**overrides))
        started.append(srv)
        return srv

    yield factory
    for srv in reversed(started):
        await srv.close()


@pytest.fixture
async def server(server_factory):
    """A running server with the default settings (closed after the test)."""
    return await server_factory()
