"""The config file: TOML in the user config directory.

Top-level keys apply to every command that has that option (``url``,
``username``, ``token``); a table per command overrides them::

    url = "ws://chat.example:4000/ws"
    username = "bob"

    [serve]
    port = 4000
    rate_limit = 100

    [chat]
    bell = true

Keys use the option name with ``_`` for ``-``. The precedence is: command-line
flag, then environment variable, then this file, then the built-in default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workspace_tui.paths import config_file


class ConfigError(Exception):
    """The config file exists but cannot be read."""


def load_config(path: Path | None = None) -> dict[str, Any]:
    """The parsed config file, or ``{}`` when there is none."""
    path = path or config_file()
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    import tomllib  # only when there is a file: every command starts here

    with fh:
        try:
            return tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc


def command_defaults(config: dict[str, Any], command: str) -> dict[str, Any]:
    """Defaults for one command: the shared top-level keys, then its own table."""
    shared = {k: v for k, v in config.items() if not isinstance(v, dict)}
    own = config.get(command)
    return {**shared, **(own if isinstance(own, dict) else {})}
