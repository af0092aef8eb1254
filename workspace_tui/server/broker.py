"""The Redis side of a multi-node workspace: key names, Lua scripts and stream decoding.

Everything that must be atomic across nodes is one Lua script (Redis runs a
script with nothing interleaved):

* :data:`SEND_LUA` -- exactly-once (``SET`` of the ``(username, clientMsgId)``
  key), the global per-user token bucket (sticky, on Redis' clock) and the
  ``XADD`` itself. Redis assigns the stream id ``ms-seq``, so the global order
  of messages is the stream order; :func:`message_from_entry` maps it 1:1 onto
  our message ids (:func:`~workspace_tui.protocol.make_message_id`).
* :data:`RESERVE_LUA` -- the global per-user connection cap: per-node counts in
  one hash per user; counts of nodes whose heartbeat key has expired are
  dropped, so a dead node cannot hold slots.

Pure module: no sockets. :mod:`.cluster` does the I/O.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from workspace_tui.protocol import ChatMessage, iso_timestamp, make_message_id, message_id_key

PREFIX = "workspace:"
MESSAGES = PREFIX + "messages"  # stream: u=userId n=username t=text c=clientMsgId ('' = none)
EVENTS = PREFIX + "events"  # stream: presence and typing between nodes (j=JSON)
NODES = PREFIX + "nodes"  # set of node ids that announced themselves
EVENTS_MAXLEN = 10_000
DEDUPE_TTL = 7 * 24 * 3600  # a clientMsgId is remembered this long (seconds)


def alive_key(node: str) -> str:
    return f"{PREFIX}node:{node}:alive"


def node_users_key(node: str) -> str:
    """Hash username -> JSON state of that user's connections on *node*."""
    return f"{PREFIX}node:{node}:users"


def conns_key(username: str) -> str:
    return f"{PREFIX}conns:{username}"


def dedupe_key(username: str, client_msg_id: str) -> str:
    return f"{PREFIX}cmid:{username}:{client_msg_id}"


def rate_key(username: str) -> str:
    return f"{PREFIX}rate:{username}"


SEND_LUA = """
-- KEYS: stream, dedupe key, rate key
-- ARGV: userId, username, text, clientMsgId ('' = none), maxlen, capacity (0 = no limit),
--       tokens per ms, dedupe ttl (s)
local cmid = ARGV[4]
if cmid ~= '' then
  local prev = redis.call('GET', KEYS[2])
  if prev then
    local e = redis.call('XRANGE', KEYS[1], prev, prev)
    if #e > 0 then return {'dup', prev, e[1][2]} end
    return {'dup', prev, {}}
  end
end
local cap = tonumber(ARGV[6])
if cap > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local rate = tonumber(ARGV[7])
  local h = redis.call('HMGET', KEYS[3], 'tokens', 'stamp', 'blocked')
  local tokens = tonumber(h[1]) or cap
  local stamp = tonumber(h[2]) or now
  local blocked = tonumber(h[3]) or 0
  if now < blocked then return {'rate', blocked - now} end
  if now > stamp then tokens = math.min(cap, tokens + (now - stamp) * rate) end
  local ttl = math.ceil(cap / rate) + 1000
  if tokens < 1 then
    local wait = math.ceil((1 - tokens) / rate)
    redis.call('HSET', KEYS[3], 'tokens', tostring(tokens), 'stamp', now, 'blocked', now + wait)
    redis.call('PEXPIRE', KEYS[3], ttl)
    return {'rate', wait}
  end
  redis.call('HSET', KEYS[3], 'tokens', tostring(tokens - 1), 'stamp', now, 'blocked', 0)
  redis.call('PEXPIRE', KEYS[3], ttl)
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[5], '*',
  'u', ARGV[1], 'n', ARGV[2], 't', ARGV[3], 'c', cmid)
if cmid ~= '' then redis.call('SET', KEYS[2], id, 'EX', ARGV[8]) end
return {'ok', id}
"""

RESERVE_LUA = """
-- KEYS: conns hash of the user. ARGV: node, cap, alive-key prefix, alive-key suffix
local h = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #h, 2 do
  local n = h[i]
  if n == ARGV[1] or redis.call('EXISTS', ARGV[3] .. n .. ARGV[4]) == 1 then
    total = total + tonumber(h[i + 1])
  else
    redis.call('HDEL', KEYS[1], n)
  end
end
if total >= tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
return 1
"""

RELEASE_LUA = """
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return n
"""


def stream_id(message_id: str) -> str | None:
    """The Redis stream id of one of our message ids (``msg_<ms>_<seq>`` -> ``ms-seq``)."""
    key = message_id_key(message_id)
    return f"{key[0]}-{key[1]}" if key else None


def message_id_of(entry_id: str) -> str:
    ms, _, seq = entry_id.partition("-")
    return make_message_id(int(ms), int(seq))


def message_from_entry(entry_id: str, fields: dict[str, str] | list[str]) -> ChatMessage:
    """A :class:`ChatMessage` from a stream entry (fields as a dict or a flat list)."""
    if isinstance(fields, list):
        fields = dict(zip(fields[::2], fields[1::2]))
    ms = int(entry_id.partition("-")[0])
    return ChatMessage(
        message_id_of(entry_id),
        fields.get("u", ""),
        fields.get("n", ""),
        fields.get("t", ""),
        iso_timestamp(ms),
        fields.get("c") or None,
    )


def redact(url: str) -> str:
    """*url* without its password, for logs and the startup line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))
