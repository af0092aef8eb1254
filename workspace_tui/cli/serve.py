"""``workspace serve``: run the embedded chat server until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import sys
from collections.abc import Callable

import click

from workspace_tui.cli.options import resolve_token, token_file_option
from workspace_tui.protocol import MAX_PAYLOAD_BYTES

from .sizes import Age, Size


def _tune_malloc() -> None:
    """Serve big transient buffers (rosters, history) from mmap so they go back to the OS.

    glibc raises its mmap threshold after the first large free, after which
    100-200 KiB frames come from the heap and fragment it: with 2,000 users this
    alone costs ~8 KiB of RSS per connection. A fixed threshold keeps it flat.
    No-op off glibc or when MALLOC_MMAP_THRESHOLD_ is set.
    """
    import os

    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def _raise_open_files_limit() -> None:
    """Every connection is a file descriptor: take the hard limit, not the (often 1024) soft one."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = 1 << 20
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when asked for, or with ``auto`` when it is installed; else asyncio's own."""
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if name == "uvloop":
            raise click.ClickException("--loop uvloop needs uvloop: pip install 'workspace-tui[speedups]'") from None
        return None
    return uvloop.new_event_loop


def _opt(*names: str, envvar: str, **kw):  # type: ignore[no-untyped-def]
    return click.option(*names, envvar=envvar, show_envvar=True, show_default=True, **kw)


def startup_error(exc: BaseException, host: str, port: int) -> str:
    """One readable line for why a server could not start (``serve`` and ``chat --serve``)."""
    if not isinstance(exc, OSError) or exc.errno is None:
        return str(exc)  # already a sentence: the store, the broker
    if exc.errno == errno.EADDRINUSE:
        return f"cannot listen on {host}:{port}: the address is already in use (is another server running? try another --port)"
    if exc.errno == errno.EACCES:
        return f"cannot listen on {host}:{port}: permission denied (ports below 1024 need privileges: try another --port)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {host}:{port}: no such address on this machine (check --host)"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def _loopback(host: str) -> bool:
    import ipaddress

    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _data_limits(broker: str | None, retention: float | None, max_bytes: int | None,
                 old_mb: int | None, old_days: float | None) -> dict[str, float | int]:
    """--retention and --max-store-bytes, for the backend in use (the old --broker-max-* too)."""
    if old_mb is not None:
        if max_bytes is not None:
            raise click.UsageError("--broker-max-mb is the old name of --max-store-bytes: give only one")
        max_bytes = old_mb * 1024 * 1024
    if old_days is not None:
        if retention is not None:
            raise click.UsageError("--broker-max-age-days is the old name of --retention: give only one")
        retention = old_days * 86400.0
    out: dict[str, float | int] = {}
    if broker:
        if retention is not None:
            out["broker_max_age"] = retention
        if max_bytes is not None:
            out["broker_max_bytes"] = max_bytes
    else:
        if retention is not None:
            out["retention"] = retention
        if max_bytes is not None:
            out["max_store_bytes"] = max_bytes
    return out


def _check_origins_and_hosts(origins: tuple[str, ...], hosts: tuple[str, ...]) -> None:
    """A usage error for an --allow-origin or --allow-host that is not one."""
    from workspace_tui.core.origins import OriginPolicy

    try:
        OriginPolicy.build(origins, hosts)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


SERVE_EPILOG = """\b
Exit codes:
  0    stopped by Ctrl-C or SIGTERM (every connection closed with 1001, the store flushed)
  1    could not start: the store cannot be opened, the port is taken, the broker is unreachable
  2    usage error (a bad flag, environment variable or config file value)
  130  a second Ctrl-C while closing
"""


@click.command(epilog=SERVE_EPILOG)
@_opt("--host", envvar="WORKSPACE_HOST", default="127.0.0.1", help="Interface to bind (0.0.0.0 for all).")
@_opt("--port", envvar="WORKSPACE_PORT", default=4000, type=click.IntRange(0, 65535), help="TCP port (0 picks a free one).")
@_opt(
    "--db",
    envvar="WORKSPACE_DB",
    default=None,
    help="SQLite store path, or :memory: for an ephemeral one.  [default: workspace.sqlite3 in the user data dir]",
)
@_opt("--rate-limit", envvar="WORKSPACE_RATE_LIMIT", default=100, type=click.IntRange(0), help="Messages per minute per user (0 turns it off).")
@_opt("--max-connections-per-user", envvar="WORKSPACE_MAX_CONNECTIONS_PER_USER", default=3, type=click.IntRange(0), help="Concurrent connections per user (0 = unlimited).")
@_opt("--idle-timeout", envvar="WORKSPACE_IDLE_TIMEOUT", default=300.0, type=click.FloatRange(0), help="Close connections silent for this many seconds (0 = never).")
@_opt("--history", envvar="WORKSPACE_HISTORY", default=100, type=click.IntRange(0, 1000), help="Messages sent to a client when it joins.")
@_opt("--token", envvar="WORKSPACE_TOKEN", default=None, help="Shared secret clients must present (token= or Authorization: Bearer). Visible in `ps`: prefer --token-file or the variable.")
@token_file_option
@_opt("--certfile", envvar="WORKSPACE_CERTFILE", default=None, type=click.Path(exists=True, dir_okay=False), help="TLS certificate (PEM): serve wss://.")
@_opt("--keyfile", envvar="WORKSPACE_KEYFILE", default=None, type=click.Path(exists=True, dir_okay=False), help="TLS private key (PEM), if not in --certfile.")
@_opt("--log-level", envvar="WORKSPACE_LOG_LEVEL", default="info", type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False), help="Log verbosity (logs go to stderr).")
@_opt("--max-payload", envvar="WORKSPACE_MAX_PAYLOAD", default=MAX_PAYLOAD_BYTES, type=click.IntRange(64), help="Largest client frame in bytes; bigger ones close with 1009.")
@_opt("--handshake-timeout", envvar="WORKSPACE_HANDSHAKE_TIMEOUT", default=10.0, type=click.FloatRange(0), help="Seconds a client has to finish the opening handshake.")
@_opt("--typing-timeout", envvar="WORKSPACE_TYPING_TIMEOUT", default=6.0, type=click.FloatRange(0.1), help="Clear a typing indicator not refreshed within this many seconds.")
@_opt("--compression/--no-compression", envvar="WORKSPACE_COMPRESSION", default=False, help="Offer permessage-deflate (costs CPU and memory per connection).")
@_opt(
    "--broker",
    envvar="WORKSPACE_BROKER",
    default=None,
    help="redis://HOST:PORT/DB: serve one workspace from several nodes through Redis (needs the redis extra; --db is not used).",
)
@_opt(
    "--broker-ttl",
    envvar="WORKSPACE_BROKER_TTL",
    default=10.0,
    type=click.FloatRange(1),
    help="With --broker: seconds after which a node that stopped heartbeating (killed) has its users shown offline.",
)
@_opt(  # older spelling of --max-store-bytes, for --broker only
    "--broker-max-mb", envvar="WORKSPACE_BROKER_MAX_MB", default=None, type=click.IntRange(1), hidden=True,
)
@_opt(  # older spelling of --retention, for --broker only
    "--broker-max-age-days", envvar="WORKSPACE_BROKER_MAX_AGE_DAYS", default=None, type=click.FloatRange(0),
    hidden=True,
)
@_opt(
    "--allow-origin",
    "allow_origins",
    envvar="WORKSPACE_ALLOW_ORIGIN",
    multiple=True,
    metavar="ORIGIN",
    help="A web page origin (scheme://host[:port]) that may connect; repeat for several. Browsers from any other "
    "origin are refused with 403. '*' lets every web page in: dangerous, any site you visit could chat as you.  [default: none]",
)
@_opt(
    "--allow-host",
    "allow_hosts",
    envvar="WORKSPACE_ALLOW_HOST",
    multiple=True,
    metavar="NAME",
    help="Another name clients reach this server by (the Host header), e.g. behind a proxy; repeat for several. "
    "IP addresses, localhost, this machine's hostname, --host and the allowed origins' hosts need none.  [default: none]",
)
@_opt(
    "--max-pending-per-address",
    envvar="WORKSPACE_MAX_PENDING_PER_ADDRESS",
    default=16,
    type=click.IntRange(0),
    help="TCP connections from one address that may be in their handshake at once; more are dropped (0 = no cap).",
)
@_opt(
    "--max-pending-handshakes",
    envvar="WORKSPACE_MAX_PENDING_HANDSHAKES",
    default=2048,
    type=click.IntRange(0),
    help="TCP connections that may be in their handshake at once, in all; more are dropped (0 = no cap).",
)
@_opt(
    "--address-limits/--no-address-limits",
    envvar="WORKSPACE_ADDRESS_LIMITS",
    default=True,
    help="Per-address limits; --no-address-limits lifts them all (benchmarks opening thousands of connections from one address).",
)
@_opt(
    "--trust-proxy",
    envvar="WORKSPACE_TRUST_PROXY",
    is_flag=True,
    default=False,
    help="Behind a reverse proxy: take the client's address from the last X-Forwarded-For hop. Only when every "
    "connection comes through the proxy (bind --host 127.0.0.1).",
)
@_opt(
    "--loop",
    envvar="WORKSPACE_LOOP",
    default="auto",
    type=click.Choice(["auto", "asyncio", "uvloop"]),
    help="Event loop. uvloop (the speedups extra) holds a connection in ~4% less memory; auto uses it when installed.",
)
@_opt(
    "--auth",
    envvar="WORKSPACE_AUTH",
    default="claim",
    type=click.Choice(["claim", "invite", "open"]),
    help="Who may use a name: claim (the first of our clients to use a name owns it by a key), invite (only names "
    "made with `workspace users add`), open (anyone is anyone: for a throwaway server). See docs/security.md.",
)
@_opt("--max-connections-per-address", envvar="WORKSPACE_MAX_CONNECTIONS_PER_ADDRESS", default=256, type=click.IntRange(0), help="Concurrent connections from one client address (0 = unlimited).")
@_opt("--claims-per-hour", envvar="WORKSPACE_CLAIMS_PER_HOUR", default=30, type=click.IntRange(0), help="New names one address may claim per hour (0 = unlimited).")
@_opt("--address-rate-limit", envvar="WORKSPACE_ADDRESS_RATE_LIMIT", default=600, type=click.IntRange(0), help="Messages per minute from one address, across all its names (0 turns it off).")
# -- data that cannot run away --
@_opt(
    "--retention",
    envvar="WORKSPACE_RETENTION",
    default=None,
    type=Age(),
    help="Remove messages older than this (30d, 12h; 0 keeps them until the size cap).  "
         "[default: 0 for SQLite, 30d with --broker]",
)
@_opt(
    "--max-store-bytes",
    envvar="WORKSPACE_MAX_STORE_BYTES",
    default=None,
    type=Size(),
    help="Most the messages may take (2GB, 500MiB; 0 = no cap); past it the oldest are removed.  "
         "[default: 1GiB of SQLite file, 512MiB of Redis stream with --broker]",
)
@_opt(
    "--min-free-disk",
    envvar="WORKSPACE_MIN_FREE_DISK",
    default="256MiB",
    type=Size(),
    help="Refuse sends (error 'unavailable') while the SQLite store's disk has less free space than this (0 = off).",
)
@_opt(
    "--allow-unsafe-redis",
    envvar="WORKSPACE_ALLOW_UNSAFE_REDIS",
    is_flag=True,
    default=False,
    help="With --broker: start even if Redis may lose acknowledged messages (no appendonly, eviction); "
         "warns in the log and /healthz.",
)
def serve(
    host: str,
    port: int,
    db: str | None,
    rate_limit: int,
    max_connections_per_user: int,
    idle_timeout: float,
    history: int,
    token: str | None,
    token_file: str | None,
    certfile: str | None,
    keyfile: str | None,
    log_level: str,
    max_payload: int,
    handshake_timeout: float,
    typing_timeout: float,
    compression: bool,
    broker: str | None,
    broker_ttl: float,
    broker_max_mb: int | None,
    broker_max_age_days: float | None,
    allow_origins: tuple[str, ...],
    allow_hosts: tuple[str, ...],
    max_pending_per_address: int,
    max_pending_handshakes: int,
    address_limits: bool,
    trust_proxy: bool,
    loop: str,
    auth: str,
    max_connections_per_address: int,
    claims_per_hour: int,
    address_rate_limit: int,
    retention: float | None,
    max_store_bytes: int | None,
    min_free_disk: int,
    allow_unsafe_redis: bool,
) -> None:
    """Host the chat server (WebSocket at /ws, /healthz and /metrics on the same port)."""
    from workspace_tui import paths
    from workspace_tui.backends.base import StoreError
    from workspace_tui.server import ServerConfig, start_server

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("workspace.server.websockets").setLevel(logging.WARNING)
    _tune_malloc()
    _raise_open_files_limit()
    if keyfile and not certfile:
        raise click.UsageError("--keyfile needs --certfile")
    token = resolve_token(token, token_file)
    _check_origins_and_hosts(allow_origins, allow_hosts)
    if broker:
        if not broker.startswith(("redis://", "rediss://", "unix://")):
            raise click.UsageError("--broker must be a redis:// (or rediss://, unix://) URL")
        try:
            import redis  # noqa: F401
        except ImportError:
            raise click.ClickException("--broker needs the redis package: pip install 'workspace-tui[redis]'") from None
        db = ":memory:"  # not used: the messages live in Redis
    if db is None:
        db_path = paths.default_db_path()
        db_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        db = str(db_path)
    config = ServerConfig(
        host=host,
        port=port,
        db_path=db,
        rate_limit=rate_limit,
        max_connections_per_user=max_connections_per_user,
        idle_timeout=idle_timeout,
        history=history,
        token=token or None,
        certfile=certfile,
        keyfile=keyfile,
        max_payload=max_payload,
        handshake_timeout=handshake_timeout,
        typing_timeout=typing_timeout,
        compression=compression,
        broker=broker or None,
        broker_node_ttl=broker_ttl,
        auth=auth,
        max_connections_per_address=max_connections_per_address,
        claims_per_hour=claims_per_hour,
        address_rate_limit=address_rate_limit,
        **_data_limits(broker, retention, max_store_bytes, broker_max_mb, broker_max_age_days),
        min_free_disk=min_free_disk,
        allow_unsafe_redis=allow_unsafe_redis,
        allow_origins=allow_origins,
        allow_hosts=allow_hosts,
        address_limits=address_limits,
        trust_proxy=trust_proxy,
        max_pending_per_address=max_pending_per_address,
        max_pending_handshakes=max_pending_handshakes,
    )
    if auth == "open" and not _loopback(host):
        click.echo(f"WARNING: --auth open on {host}: anyone who can reach port {port} can use any name, read the "
                   "history and post as anyone. Use --auth claim or invite on a shared network.", err=True)
    if "*" in allow_origins:
        click.echo("warning: --allow-origin '*' lets every web page you visit connect to this server", err=True)

    async def run() -> None:
        # Handlers first: a SIGTERM while the server starts still means a clean stop.
        stop = asyncio.Event()
        running = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            running.add_signal_handler(sig, stop.set)
        try:
            server = await start_server(config)
        except (OSError, StoreError) as exc:
            raise click.ClickException(startup_error(exc, host, port)) from None
        logging.getLogger("workspace.server").info("event loop: %s", "uvloop" if factory else "asyncio")
        click.echo(f"workspace server listening on {server.url} (store: {server.backend.label})")
        sys.stdout.flush()
        await stop.wait()
        logging.getLogger("workspace.server").info("stopping (signal)")
        await server.close()

    factory = _loop_factory(loop)
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(run())
    except KeyboardInterrupt:  # a second Ctrl-C while closing
        sys.exit(130)
