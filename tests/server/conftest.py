"""Server tests: no WORKSPACE_* server settings leak in from the developer's environment."""

from __future__ import annotations

import pytest

SERVE_VARS = (
    "WORKSPACE_HOST", "WORKSPACE_PORT", "WORKSPACE_DB", "WORKSPACE_RATE_LIMIT", "WORKSPACE_MAX_CONNECTIONS_PER_USER",
    "WORKSPACE_IDLE_TIMEOUT", "WORKSPACE_HISTORY", "WORKSPACE_CERTFILE", "WORKSPACE_KEYFILE", "WORKSPACE_LOG_LEVEL",
    "WORKSPACE_MAX_PAYLOAD", "WORKSPACE_HANDSHAKE_TIMEOUT", "WORKSPACE_TYPING_TIMEOUT", "WORKSPACE_COMPRESSION",
    "WORKSPACE_BROKER", "WORKSPACE_BROKER_TTL",
)


@pytest.fixture(autouse=True)
def clean_server_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in SERVE_VARS:
        monkeypatch.delenv(var, raising=False)
