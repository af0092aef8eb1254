"""Server tests: no WORKSPACE_* server settings leak in from the developer's environment."""

from __future__ import annotations

import asyncio

import pytest

try:
    import uvloop
except ImportError:  # not on Windows; `serve --loop auto` falls back to asyncio's loop
    uvloop = None

SERVE_VARS = (
    "WORKSPACE_HOST", "WORKSPACE_PORT", "WORKSPACE_DB", "WORKSPACE_RATE_LIMIT", "WORKSPACE_MAX_CONNECTIONS_PER_USER",
    "WORKSPACE_IDLE_TIMEOUT", "WORKSPACE_HISTORY", "WORKSPACE_CERTFILE", "WORKSPACE_KEYFILE", "WORKSPACE_LOG_LEVEL",
    "WORKSPACE_MAX_PAYLOAD", "WORKSPACE_HANDSHAKE_TIMEOUT", "WORKSPACE_TYPING_TIMEOUT", "WORKSPACE_COMPRESSION",
    "WORKSPACE_BROKER", "WORKSPACE_BROKER_TTL", "WORKSPACE_BROKER_MAX_MB", "WORKSPACE_BROKER_MAX_AGE_DAYS",
    "WORKSPACE_RETENTION", "WORKSPACE_MAX_STORE_BYTES", "WORKSPACE_MIN_FREE_DISK", "WORKSPACE_ALLOW_UNSAFE_REDIS",
    "WORKSPACE_TOKEN", "WORKSPACE_TOKEN_FILE", "WORKSPACE_ALLOW_ORIGIN", "WORKSPACE_ALLOW_HOST",
    "WORKSPACE_MAX_PENDING_PER_ADDRESS", "WORKSPACE_MAX_PENDING_HANDSHAKES", "WORKSPACE_ADDRESS_LIMITS",
    "WORKSPACE_TRUST_PROXY",
)


@pytest.fixture(autouse=True)
def clean_server_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in SERVE_VARS:
        monkeypatch.delenv(var, raising=False)


# The server's hot paths (raw transport writes, slow readers, closes, the handshake) run under
# uvloop as well, which `workspace serve` uses when it is installed (--loop auto).
UVLOOP_MODULES = {"test_fanout", "test_limits", "test_messages", "test_presence", "test_handshake", "test_close_handshake"}


def pytest_asyncio_loop_factories(config, item):
    factories = {"asyncio": asyncio.new_event_loop}
    if uvloop is not None and item.module.__name__.rpartition(".")[2] in UVLOOP_MODULES:
        factories["uvloop"] = uvloop.new_event_loop
    return factories
