"""Where workspace keeps its files, in one place.

Everything lives in the platformdirs locations for the app name ``workspace``:
the config file in the config directory; the server's store, the clients'
outboxes, the chat's input history and remembered theme in the data directory.
``WORKSPACE_DATA_DIR`` and ``WORKSPACE_CONFIG_DIR`` override them (tests and
multi-profile setups use this).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import platformdirs

try:  # the builtin module: ``import hashlib`` would load OpenSSL's too (~1.5 ms at startup)
    from _blake2 import blake2b as _blake2b
except ImportError:  # pragma: no cover - CPython always has it
    from hashlib import blake2b as _blake2b

APP_NAME = "workspace"


def data_dir() -> Path:
    """The user data directory: the server's store, client outboxes and resume state."""
    override = os.environ.get("WORKSPACE_DATA_DIR")
    return Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def config_dir() -> Path:
    """The user config directory, holding ``config.toml``."""
    override = os.environ.get("WORKSPACE_CONFIG_DIR")
    return Path(override) if override else Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def config_file() -> Path:
    return config_dir() / "config.toml"


def default_db_path() -> Path:
    """The embedded server's SQLite store."""
    return data_dir() / "workspace.sqlite3"


def server_slug(url: str) -> str:
    """A short, filesystem-safe name for a server URL (``127.0.0.1-4000-ab12cd34``)."""
    readable = re.sub(r"[^A-Za-z0-9]+", "-", url.split("://", 1)[-1].split("?", 1)[0]).strip("-")[:40]
    digest = _blake2b(url.encode(), digest_size=4).hexdigest()
    return f"{readable}-{digest}"


def client_state_path(url: str, username: str) -> Path:
    """The client's outbox and resume state for one server and username."""
    return data_dir() / "clients" / server_slug(url) / f"{username}.sqlite3"


def chat_settings_path() -> Path:
    """What the chat remembers of your choices (the theme). Machine-written: ``config.toml`` stays yours."""
    return data_dir() / "chat.json"


def input_history_path(url: str, username: str) -> Path:
    """What you sent from the chat to one server as one user, for Up/Down after a restart."""
    return data_dir() / "clients" / server_slug(url) / f"{username}.history.json"
