"""Whether a Redis server keeps what it acknowledged: checked with ``CONFIG GET`` at start.

Redis is the only copy of the history. Three settings decide whether a message
the server acknowledged is still there after Redis restarts or fills up:

* ``appendonly yes``: every write goes to the append-only file; without it a
  restart (or ``kill -9``) loses everything since the last RDB snapshot, and
  with the messages the exactly-once keys, so a client's resend is stored twice.
* ``appendfsync everysec`` (or ``always``): the file is flushed to the disk each
  second; with ``no`` the OS decides (often 30 s), which a power loss shows.
* ``maxmemory-policy noeviction``: a full Redis refuses writes (clients see
  ``unavailable`` and resend); any other policy silently deletes keys: messages,
  exactly-once keys, connection counts.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Setting(NamedTuple):
    name: str
    good: tuple[str, ...]  # acceptable values; the first is the one to set
    protects: str


SETTINGS = (
    Setting("appendonly", ("yes",), "without it a restart loses acknowledged messages and exactly-once keys"),
    Setting("appendfsync", ("everysec", "always"), "without it the file reaches the disk only when the OS decides"),
    Setting("maxmemory-policy", ("noeviction",), "any other policy deletes messages and keys when memory is full"),
)


class Problem(NamedTuple):
    setting: Setting
    value: str


async def unsafe_settings(r: Any) -> list[Problem] | None:
    """The settings of *r* that can lose acknowledged messages; ``None`` when ``CONFIG GET``
    is refused (renamed or disabled, as managed Redis services do)."""
    from redis.exceptions import ResponseError

    found: dict[str, str] = {}
    try:
        for s in SETTINGS:
            found.update(await r.config_get(s.name))
    except ResponseError:
        return None
    return [Problem(s, found.get(s.name, "?")) for s in SETTINGS if found.get(s.name) not in s.good]


def refusal(label: str, problems: list[Problem] | None) -> str:
    """What the operator reads when the server refuses to start against this Redis."""
    if problems is None:
        return (f"cannot check the broker {label}: CONFIG GET is disabled or renamed (a managed Redis?), "
                "so the server cannot tell whether Redis keeps acknowledged messages.\n"
                "Make sure it runs with appendonly yes, appendfsync everysec and maxmemory-policy noeviction "
                "(your provider's settings), then start with --allow-unsafe-redis.")
    lines = [f"the broker {label} may lose messages it acknowledged:"]
    lines += [f"  {p.setting.name} is {p.value!r}, needs {' or '.join(p.setting.good)}: {p.setting.protects}"
              for p in problems]
    lines.append("Set in redis.conf (then restart Redis):")
    lines += [f"  {p.setting.name} {p.setting.good[0]}" for p in problems]
    lines.append("or on the running Redis (CONFIG REWRITE writes them to redis.conf):")
    lines += [f"  redis-cli -u {label} CONFIG SET {p.setting.name} {p.setting.good[0]}" for p in problems]
    lines.append(f"  redis-cli -u {label} CONFIG REWRITE")
    lines.append("To run anyway (not recommended), start with --allow-unsafe-redis.")
    return "\n".join(lines)


def warning(problems: list[Problem] | None) -> str:
    """One line for the log and ``/healthz`` when the operator overrode the check."""
    if problems is None:
        return "Redis settings unchecked (CONFIG GET refused): acknowledged messages may be lost"
    return "unsafe Redis settings: " + ", ".join(f"{p.setting.name}={p.value}" for p in problems) + \
        ": acknowledged messages may be lost"
