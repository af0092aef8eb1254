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


def unknown_keys(config: dict[str, Any], valid: dict[str, set[str]], nested: dict[str, set[str]]) -> list[str]:
    """Readable lines for every key or table of *config* that no command reads.

    *valid* maps each command to its option keys; a top-level key is valid when any command
    has it. *nested* maps a command to the sub-tables it reads (``chat.keys``).
    """
    import difflib

    shared = set().union(*valid.values()) if valid else set()
    problems = []
    for key, value in config.items():
        if isinstance(value, dict):
            if key not in valid:
                near = difflib.get_close_matches(key, list(valid), n=1)
                problems.append(f"unknown table [{key}]" + (f"; did you mean [{near[0]}]?" if near else ""))
                continue
            for sub, subvalue in value.items():
                if isinstance(subvalue, dict) and sub in nested.get(key, set()):
                    continue
                if sub not in valid[key]:
                    near = difflib.get_close_matches(sub, sorted(valid[key]), n=1)
                    problems.append(f"unknown key {sub!r} in [{key}]" + (f"; did you mean {near[0]!r}?" if near else ""))
        elif key not in shared:
            near = difflib.get_close_matches(key, sorted(shared), n=1)
            problems.append(f"unknown key {key!r}" + (f"; did you mean {near[0]!r}?" if near else ""))
    return problems
