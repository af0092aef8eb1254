"""Which ``Origin`` and ``Host`` a request may carry: the server's defence against web pages.

Every browser sends ``Origin`` on a WebSocket handshake, and a page may open a WebSocket to
any address, ``ws://127.0.0.1:4000`` included: without a check, any page the user visits
could chat as them. So a request that carries ``Origin`` is let in only from origins the
operator allowed (``--allow-origin``); our clients and scripts send none and are unaffected.

``Host`` defeats DNS rebinding: a page at ``http://evil.example:4000`` whose name is made to
resolve to 127.0.0.1 reaches the server as the same origin, so its requests carry
``Host: evil.example:4000``. A Host must name this server: an IP literal (rebinding needs a
name), ``localhost``, the names the server was given, or ``--allow-host`` names.

Pure: headers in, a :class:`~.state.Refusal` or ``None`` out.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .state import Refusal

ANY = "*"  # --allow-origin '*' / --allow-host '*': every one (lets every web page in)

_SCHEME_RE = re.compile(r"^[a-z][a-z0-9+.\-]*$")
_NAME_RE = re.compile(r"^[a-z0-9_\-]+(\.[a-z0-9_\-]+)*$")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_SHOWN = 200  # characters of a header echoed in a reason


def normalize_origin(value: str) -> str:
    """``scheme://host[:port]`` in its one spelling (lower case, default port left out),
    or ``ValueError`` saying what is wrong with *value*."""
    text = value.strip()
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    if not sep or not _SCHEME_RE.match(scheme):
        raise ValueError(f"{value!r} is not an origin: it looks like http://HOST[:PORT]")
    if not rest or any(c in rest for c in "/?#@"):
        raise ValueError(f"{value!r} is not an origin: only scheme://HOST[:PORT], no path, no user")
    host, port = split_host_port(rest)
    if host is None or port == -1:
        raise ValueError(f"{value!r} is not an origin: bad host or port")
    shown = f"[{host}]" if ":" in host else host
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{shown}"
    return f"{scheme}://{shown}:{port}"


def split_host_port(text: str) -> tuple[str | None, int | None]:
    """``(name, port)`` of ``name[:port]`` or ``[v6]:port``: the name in lower case without a
    trailing dot, the port ``None`` when absent; name ``None`` or port ``-1`` when malformed."""
    text = text.strip().lower()
    if text.startswith("["):
        host, sep, after = text[1:].partition("]")
        if not sep:
            return None, None
        try:
            ipaddress.IPv6Address(host.partition("%")[0])
        except ValueError:
            return None, None
        port_text = after[1:] if after.startswith(":") else None
        if after and port_text is None:
            return None, None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            host, port_text = text, None
        host = host.rstrip(".")
        if not host or not _NAME_RE.match(host):
            return None, None
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return host, -1
    return host, int(port_text)


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.partition("%")[0])
    except ValueError:
        return False
    return True


_SEEN_MAX = 256  # distinct Host values remembered (a client picks its Host header freely)


@dataclass(frozen=True)
class OriginPolicy:
    """The origins and host names a server answers to. Build it with :meth:`build`."""

    origins: frozenset[str] = frozenset()
    hosts: frozenset[str] = frozenset()
    any_origin: bool = False
    any_host: bool = False
    # Host header values already judged, for requests without Origin (nearly all): a handshake
    # costs one dict lookup instead of parsing the name. Bounded: cleared when it grows past _SEEN_MAX.
    _seen_hosts: dict[str, Refusal | None] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(
        cls, allow_origins: Iterable[str] = (), allow_hosts: Iterable[str] = (), server_names: Iterable[str] = ()
    ) -> OriginPolicy:
        """From the operator's ``--allow-origin`` / ``--allow-host`` values (``ValueError`` for a bad
        one) and the names the server is known by (its hostname, the address it is bound to)."""
        origins: set[str] = set()
        hosts: set[str] = set()
        any_origin = any_host = False
        for value in allow_origins:
            if value.strip() == ANY:
                any_origin = True
                continue
            origin = normalize_origin(value)
            origins.add(origin)
            hosts.add(split_host_port(origin.partition("://")[2])[0] or "")
        for value in allow_hosts:
            if value.strip() == ANY:
                any_host = True
                continue
            name, port = split_host_port(value)
            if name is None or port is not None:
                raise ValueError(f"{value!r} is not a host name: give the name alone, without scheme or port")
            hosts.add(name)
        for value in server_names:
            name, _ = split_host_port(value)
            if name:
                hosts.add(name)
        hosts.discard("")
        return cls(frozenset(origins), frozenset(hosts), any_origin, any_host)

    def host_allowed(self, name: str) -> bool:
        return (
            self.any_host or is_ip_literal(name) or name == "localhost" or name.endswith(".localhost")
            or name in self.hosts
        )

    def origin_allowed(self, origin: str) -> bool:
        if self.any_origin:
            return True
        try:
            return normalize_origin(origin) in self.origins
        except ValueError:
            return False

    def check(self, hosts: Sequence[str], origins: Sequence[str]) -> Refusal | None:
        """``None`` when a request with these ``Host`` and ``Origin`` header values (each list
        holds every copy of that header) may go on; else why not."""
        if len(hosts) != 1:
            return Refusal(400, "bad request: it needs exactly one Host header")
        if not origins:  # not a browser: our clients, scripts
            seen = self._seen_hosts
            host = hosts[0]
            if host not in seen:
                if len(seen) >= _SEEN_MAX:
                    seen.clear()
                seen[host] = self._check_host(host)
            return seen[host]
        wrong = self._check_host(hosts[0])
        if wrong is not None:
            return wrong
        if len(origins) > 1:
            return Refusal(400, "bad request: more than one Origin header")
        origin = origins[0]
        if self.origin_allowed(origin):
            return None
        if origin.strip().lower() == "null":
            return Refusal(
                403,
                "origin null (a local file or a sandboxed page) is not allowed: only --allow-origin '*' admits it, "
                "and that lets every web page in",
            )
        try:
            shown = normalize_origin(origin)
        except ValueError:
            return Refusal(403, f"origin {_show(origin)} is not allowed: it is not scheme://HOST[:PORT]")
        return Refusal(403, f"origin {_show(shown)} is not allowed: start the server with --allow-origin {_show(shown)}")

    def _check_host(self, host: str) -> Refusal | None:
        name, port = split_host_port(host)
        if name is None or port == -1:
            return Refusal(400, f"bad request: Host {_show(host)} is not a host name")
        if not self.host_allowed(name):
            return Refusal(
                421,
                f"host {_show(name)} is not a name of this server: start the server with --allow-host {_show(name)} "
                "if clients reach it by that name",
            )
        return None


def _show(text: str) -> str:
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


def forwarded_client(values: Sequence[str]) -> str | None:
    """The client address a reverse proxy reports: the last ``X-Forwarded-For`` hop (the one the
    proxy itself added; earlier hops are whatever the client claimed), or ``None`` if it is not
    an IP address. *values* holds every copy of the header."""
    hops = [hop.strip() for value in values for hop in value.split(",")]
    last = hops[-1] if hops else ""
    if last.startswith("[") and "]" in last:  # [v6]:port, as some proxies write it
        last = last[1:].partition("]")[0]
    return last if last and is_ip_literal(last) else None
