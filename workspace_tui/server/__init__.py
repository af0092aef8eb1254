"""The embedded chat server: the network layer over the chat core and a backend.

::

    server = await start_server(ServerConfig(host="127.0.0.1", port=0, db_path=":memory:"))
    server.url      # ws://127.0.0.1:PORT/ws
    await server.close()
"""

from __future__ import annotations

from .app import Server, start_server
from .config import ServerConfig

__all__ = ["Server", "ServerConfig", "start_server"]
