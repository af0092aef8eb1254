"""The Redis side of a multi-node workspace: key names, Lua scripts and stream decoding.

Everything that must be atomic across nodes is one Lua script (Redis runs a
script with nothing interleaved):

* One stream, :data:`MESSAGES`, carries the messages and, between them, the
  *relay entries*: a local user's presence or typing change for the other
  nodes (fields ``k`` = ``presence`` | ``typing`` and ``j`` = the JSON, no
  ``t``), written by :data:`RELAY_LUA` through the same pipeline as the sends.
  Every node reads the stream in order, so what a user did reaches every node
  in the order they did it. Relay entries are never messages: history reads,
  the newest message (:data:`LAST`) and the gap check skip them; the byte
  count counts each at :data:`RELAY_SIZE`. Node-level events (hello, bye) go
  through :data:`EVENTS`.
* :data:`SEND_LUA` -- exactly-once (``SET`` of the ``(username, clientMsgId)``
  key), the global per-user token bucket (sticky, on Redis' clock), the
  ``XADD`` itself and trimming by bytes. Redis assigns the stream id
  ``ms-seq``, so the global order of messages is the stream order;
  :func:`message_from_entry` maps it 1:1 onto our message ids
  (:func:`~workspace_tui.protocol.make_message_id`). Each entry carries the
  origin tag ``o`` of the node and draft it came from, so the node that sent it
  recognises its own message when its reader sees it.
* Trimming: :data:`BYTES` holds the size of everything in the stream
  (:data:`ENTRY_OVERHEAD` plus the UTF-8 bytes of each text). When a send
  takes it past the limit, the same script reads the oldest entries, removes
  them with an exact ``XTRIM MINID`` and subtracts their sizes (a bounded
  amount per call, so the cost is spread over the sends; a relay trims the
  same way). :data:`TRIM_LUA` does the same for age, from each node's
  heartbeat. The newest message (:data:`LAST`) is never trimmed: relay entries
  after it go one by one (``XDEL``).
* :data:`READ_LUA` -- history reads that stop at a byte budget inside Redis:
  it walks ``XREVRANGE``/``XRANGE`` a few entries at a time, so a read never
  ships much more than one frame's worth, however big the messages are. It
  keeps the rooms asked for and looks at :data:`READ_SCAN` entries at most,
  saying where it stopped so the caller can carry on.
* :data:`NEWEST_LUA` -- the newest entry and the newest message, at start.
* :data:`RESERVE_LUA` / :data:`RELEASE_LUA` -- the global per-user connection
  cap: per-node counts in one hash per user; counts of nodes whose heartbeat
  key has expired are dropped, so a dead node cannot hold slots.

Pure module: no sockets. :mod:`.redis` does the I/O.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from workspace_tui.protocol import GENERAL, ChatMessage, iso_timestamp, make_message_id, message_id_key

PREFIX = "workspace:"
# stream: messages (u=userId n=username t=text c=clientMsgId ('' = none) o=origin tag v=verified
# r=room, absent for general's (and for every entry written before rooms)) and, between
# them, relay entries (k='presence'|'typing' j=JSON; no t): a user's presence and typing for the other nodes
MESSAGES = PREFIX + "messages"
BYTES = PREFIX + "messages:bytes"  # what MESSAGES holds, in bytes (sizes as entry_size / RELAY_SIZE)
LAST = PREFIX + "messages:last"  # the stream id of the newest message in MESSAGES (NO_MESSAGE: none)
EVENTS = PREFIX + "events"  # stream: node-level events between nodes, hello and bye (j=JSON)
NODES = PREFIX + "nodes"  # set of node ids that announced themselves
EVENTS_MAXLEN = 10_000
DEDUPE_TTL = 7 * 24 * 3600  # a clientMsgId is remembered this long (seconds)
ENTRY_OVERHEAD = 64  # bytes counted per stream entry on top of its text (ids, user, fields)
RELAY_SIZE = 128  # bytes counted per relay entry (about what one holds)
ROOMS_LAST = PREFIX + "rooms:last"  # hash: room -> stream id of its newest message
# the events that travel as relay entries of MESSAGES (member, topic, invite: room changes, core.room_done)
RELAY_KINDS = ("presence", "typing", "read", "member", "topic", "invite")
NO_MESSAGE = "0-0"  # LAST when the stream holds no message
READ_STEP = 8  # entries a history read takes from the stream at a time
READ_SCAN = 4096  # entries one history read call looks at, at most (other rooms' and relays included)
TRIM_MAX_ENTRIES = 128  # entries one send (or one trim call) removes at most
TRIM_MAX_BYTES = 8 * 1024 * 1024  # ... and bytes: a send is at most 1 MiB, so trimming outpaces it
TRIM_TARGET = 0.95  # once over the limit, trim down to this share of it (fewer, larger trims)
ALIVE_PREFIX = PREFIX + "node:"
ALIVE_SUFFIX = ":alive"


def alive_key(node: str) -> str:
    return f"{ALIVE_PREFIX}{node}{ALIVE_SUFFIX}"


def node_users_key(node: str) -> str:
    """Hash username -> JSON state of that user's connections on *node*."""
    return f"{PREFIX}node:{node}:users"


def conns_key(username: str) -> str:
    return f"{PREFIX}conns:{username}"


def dedupe_key(username: str, client_msg_id: str) -> str:
    return f"{PREFIX}cmid:{username}:{client_msg_id}"


def rate_key(username: str) -> str:
    return f"{PREFIX}rate:{username}"


def entry_size(text: str) -> int:
    """What one message counts against the stream's byte limit (as the scripts count it)."""
    return len(text.encode()) + ENTRY_OVERHEAD


def stored_size(fields: dict[str, str] | list[str]) -> int:
    """What one entry of :data:`MESSAGES` (a message or a relay) counts against the byte limit."""
    fields = _fields(fields)
    return entry_size(fields["t"]) if "t" in fields else RELAY_SIZE


# Lua helpers shared by the scripts: an entry (flat field list) is a message when it has a text
# field 't'; anything else is a relay entry, counted at RELAY_SIZE.
_SIZE_LUA = f"""
local function text_of(f)
  for i = 1, #f, 2 do
    if f[i] == 't' then return f[i + 1] end
  end
  return nil
end
local function entry_size(f, overhead)
  local t = text_of(f)
  if t then return #t + overhead end
  return {RELAY_SIZE}
end
local function id_key(id)  -- a stream id as two numbers, to compare
  local ms, seq = string.match(id, '^(%d+)%-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function id_after(a, b)  -- a > b
  local am, as = id_key(a)
  local bm, bs = id_key(b)
  return am > bm or (am == bm and as > bs)
end
"""

# Remove the oldest entries of KEYS[1] while the total in KEYS[2] is over `target` (when
# `max_bytes` > 0 and the total passed it) or they are older than `cutoff` (ms; 0 = no age
# limit); at most TRIM_MAX_ENTRIES / TRIM_MAX_BYTES per call. Never the newest message (the id
# in `last_key`): the entries before it go with one XTRIM MINID, the relay entries after it one
# by one (XDEL); a message after it (a stale `last_key`) stops the trim. Without `last_key`,
# never the newest entry. Exact: the sizes read are the sizes removed.
_TRIM_LUA = _SIZE_LUA + f"""
local function trim(stream, bytes_key, last_key, max_bytes, cutoff, overhead)
  local total = tonumber(redis.call('GET', bytes_key) or '0')
  local over = max_bytes > 0 and total > max_bytes
  if not over and cutoff <= 0 then return 0 end
  local target = max_bytes * {TRIM_TARGET}
  local keep = redis.call('GET', last_key)
  local cap = redis.call('XLEN', stream)
  if not keep then cap = cap - 1 end  -- (not known yet: as if the newest entry were a message)
  if keep == '{NO_MESSAGE}' then keep = false end  -- no message to keep
  if cap > {TRIM_MAX_ENTRIES} then cap = {TRIM_MAX_ENTRIES} end
  local removed, n, last = 0, 0, nil
  local dels = {{}}  -- relay entries after the newest message
  local past = false  -- at or after the newest message
  local cur = '-'
  local stop = false
  local step = 1  -- growing batches: the first entry is often the only one to go
  while not stop and n < cap and removed < {TRIM_MAX_BYTES} do
    local want = cap - n
    if want > step then want = step end
    if step < {READ_STEP} then step = step * 2 end
    local batch = redis.call('XRANGE', stream, cur, '+', 'COUNT', want)
    for i = 1, #batch do
      local e = batch[i]
      local trim_bytes = over and total - removed > target
      local trim_age = cutoff > 0 and tonumber(string.match(e[1], '^(%d+)')) < cutoff
      if not (trim_bytes or trim_age) or n >= cap or removed >= {TRIM_MAX_BYTES} then
        stop = true
        break
      end
      if keep and not past and (e[1] == keep or id_after(e[1], keep)) then past = true end
      if past then
        if text_of(e[2]) then
          if e[1] ~= keep then stop = true break end  -- a message after 'the newest': keep it all
        else
          dels[#dels + 1] = e[1]
          removed = removed + {RELAY_SIZE}
          n = n + 1
        end
      else
        removed = removed + entry_size(e[2], overhead)
        n = n + 1
        last = e[1]
      end
    end
    if stop or #batch < want then break end
    cur = '(' .. batch[#batch][1]
  end
  if last then
    local ms, seq = string.match(last, '^(%d+)%-(%d+)$')
    redis.call('XTRIM', stream, 'MINID', ms .. '-' .. string.format('%d', tonumber(seq) + 1))
  end
  if #dels > 0 then redis.call('XDEL', stream, unpack(dels)) end
  if removed > 0 then redis.call('DECRBY', bytes_key, removed) end
  return n
end

-- Count an entry just added to the stream (`size` bytes) and trim by bytes.
local function added(stream, bytes_key, last_key, size, max_bytes, overhead)
  if redis.call('XLEN', stream) == 1 then
    redis.call('SET', bytes_key, size)  -- a new stream: the count starts here
  elseif redis.call('EXISTS', bytes_key) == 1 then  -- (missing: a node is counting the stream now)
    redis.call('INCRBY', bytes_key, size)
    trim(stream, bytes_key, last_key, max_bytes, 0, overhead)
  end
end
"""

SEND_LUA = _TRIM_LUA + """
-- KEYS: stream, dedupe key, rate key, bytes key, newest-message key, rooms' newest-message hash
-- ARGV: userId, username, text, clientMsgId ('' = none), capacity (0 = no limit),
--       tokens per ms, dedupe ttl (s), origin tag, max bytes (0 = no limit), entry overhead,
--       verified ('1' or ''), room, key prefix, then for a direct message its participants as
--       name key, name, name key, name, ...: the room and its members are recorded with the
--       first message (in this script, so two nodes sending the first one at once agree)
local cmid = ARGV[4]
if cmid ~= '' then
  local prev = redis.call('GET', KEYS[2])
  if prev then
    local e = redis.call('XRANGE', KEYS[1], prev, prev)
    if #e > 0 then return {'dup', prev, e[1][2]} end
    return {'dup', prev, {}}
  end
end
local cap = tonumber(ARGV[5])
if cap > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local rate = tonumber(ARGV[6])
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
local room = ARGV[12]
local id
if room == 'general' then
  id = redis.call('XADD', KEYS[1], '*', 'u', ARGV[1], 'n', ARGV[2], 't', ARGV[3], 'c', cmid, 'o', ARGV[8], 'v', ARGV[11])
else
  id = redis.call('XADD', KEYS[1], '*', 'u', ARGV[1], 'n', ARGV[2], 't', ARGV[3], 'c', cmid, 'o', ARGV[8], 'v', ARGV[11],
                  'r', room)
end
redis.call('HSET', KEYS[6], room, id)
if #ARGV > 13 then
  local pre = ARGV[13] .. 'room:' .. room
  if redis.call('HSETNX', pre, 'kind', 'dm') == 1 then
    redis.call('HSET', pre, 'topic', '', 'by', ARGV[2])
    for i = 14, #ARGV - 1, 2 do
      redis.call('HSET', pre .. ':members', ARGV[i], ARGV[i + 1])
      redis.call('ZADD', pre .. ':names', 0, ARGV[i + 1])
      redis.call('SADD', ARGV[13] .. 'user:' .. ARGV[i] .. ':rooms', room)
    end
  end
end
if cmid ~= '' then redis.call('SET', KEYS[2], id, 'EX', ARGV[7]) end
redis.call('SET', KEYS[5], id)
local overhead = tonumber(ARGV[10])
added(KEYS[1], KEYS[4], KEYS[5], #ARGV[3] + overhead, tonumber(ARGV[9]), overhead)
return {'ok', id}
"""

RELAY_LUA = _TRIM_LUA + f"""
-- KEYS: stream, bytes key, newest-message key. ARGV: kind, JSON, max bytes (0 = no limit), overhead
-- A relay entry (a local user's presence or typing for the other nodes), counted and trimmed
-- like a message.
local id = redis.call('XADD', KEYS[1], '*', 'k', ARGV[1], 'j', ARGV[2])
added(KEYS[1], KEYS[2], KEYS[3], {RELAY_SIZE}, tonumber(ARGV[3]), tonumber(ARGV[4]))
return id
"""

TRIM_LUA = _TRIM_LUA + """
-- KEYS: stream, bytes key, newest-message key. ARGV: max bytes (0 = no limit), max age in ms (0 = keep), overhead
-- Returns how many entries were removed (TRIM_MAX_ENTRIES: call again).
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local cutoff = 0
local age = tonumber(ARGV[2])
if age > 0 then
  local t = redis.call('TIME')
  cutoff = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - age
end
return trim(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[1]), cutoff, tonumber(ARGV[3]))
"""

SIZE_LUA = _SIZE_LUA + f"""
-- KEYS: stream. ARGV: first bound (inclusive, or '(' exclusive), last id (inclusive), overhead
-- The size of up to 512 entries from the first bound: {{bytes, entries, last id read}}.
local overhead = tonumber(ARGV[3])
local total, n, last = 0, 0, ''
local cur = ARGV[1]
while n < 512 do
  local batch = redis.call('XRANGE', KEYS[1], cur, ARGV[2], 'COUNT', {READ_STEP * 4})
  for i = 1, #batch do
    total = total + entry_size(batch[i][2], overhead)
    last = batch[i][1]
  end
  n = n + #batch
  if #batch < {READ_STEP * 4} then break end
  cur = '(' .. last
end
return {{total, n, last}}
"""

INIT_BYTES_LUA = _SIZE_LUA + """
-- KEYS: stream, bytes key. ARGV: last id counted, bytes counted up to it, overhead
-- Set the byte count of a stream that had none: what was counted plus what came since.
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local total = tonumber(ARGV[2])
local overhead = tonumber(ARGV[3])
local cur = '(' .. ARGV[1]
if ARGV[1] == '' then cur = '-' end
while true do
  local batch = redis.call('XRANGE', KEYS[1], cur, '+', 'COUNT', 64)
  for i = 1, #batch do total = total + entry_size(batch[i][2], overhead) end
  if #batch < 64 then break end
  cur = '(' .. batch[#batch][1]
end
redis.call('SET', KEYS[2], total)
return 1
"""

READ_LUA = _SIZE_LUA + """
-- KEYS: stream
-- ARGV: kind ('latest': newest first, from ARGV[2] down to ARGV[3]; 'after': oldest first,
--       from ARGV[2] up to ARGV[3]), first bound, last bound, limit, byte budget, step, overhead,
--       entries to look at (at most), then the rooms whose messages are wanted
-- Returns {has more (0/1), oldest message in the stream ('after' only, else ''), {{id, fields}, ...},
-- the last entry looked at when the scan stopped at its bound ('' when it did not: the read went
-- as far as it could)}. Messages of the rooms only: relay entries and other rooms' messages are
-- skipped, and count against neither the limit nor the budget (only against the scan bound).
local latest = ARGV[1] == 'latest'
local cur, stop_at = ARGV[2], ARGV[3]
local limit, budget = tonumber(ARGV[4]), tonumber(ARGV[5])
local step, overhead = tonumber(ARGV[6]), tonumber(ARGV[7])
local scan = tonumber(ARGV[8])
local wanted = {}
for i = 9, #ARGV do wanted[ARGV[i]] = true end
local function room_of(f)
  for i = 1, #f, 2 do
    if f[i] == 'r' then return f[i + 1] end
  end
  return 'general'
end
local out, used, more = {}, 0, 0
local skipped, seen, next = 0, 0, ''
while true do
  local want = limit - #out + 1  -- one more than fits the limit tells whether there is more
  if want < 1 then want = 1 end
  if want > step then want = step end
  if skipped > 0 then want = step end  -- relay entries about: no smaller batches than a step
  if want > scan - seen then want = scan - seen end
  local batch
  if latest then
    batch = redis.call('XREVRANGE', KEYS[1], cur, stop_at, 'COUNT', want)
  else
    batch = redis.call('XRANGE', KEYS[1], cur, stop_at, 'COUNT', want)
  end
  local full = false
  for i = 1, #batch do
    local e = batch[i]
    local t = text_of(e[2])
    if t and not wanted[room_of(e[2])] then t = nil end
    if t then
      local size = #t + overhead
      if #out >= limit or (#out > 0 and used + size > budget) then
        more = 1
        full = true
        break
      end
      out[#out + 1] = e
      used = used + size
    else
      skipped = skipped + 1
    end
  end
  if full or #batch < want then break end
  seen = seen + #batch
  cur = '(' .. batch[#batch][1]
  if seen >= scan then
    next = batch[#batch][1]
    break
  end
end
local oldest = ''
if not latest then
  local from = '-'
  while oldest == '' do
    local batch = redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', step)
    for i = 1, #batch do
      if text_of(batch[i][2]) then
        oldest = batch[i][1]
        break
      end
    end
    if #batch < step then break end
    from = '(' .. batch[#batch][1]
  end
end
return {more, oldest, out, next}
"""

NEWEST_LUA = _SIZE_LUA + f"""
-- KEYS: stream, newest-message key. Returns {{newest entry id or '', newest message id or ''}}
-- and sets the key when it is missing or wrong (a stream written by an older version).
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #top == 0 then
  redis.call('DEL', KEYS[2])
  return {{'', ''}}
end
local last = redis.call('GET', KEYS[2])
if last == '{NO_MESSAGE}' then return {{top[1][1], ''}} end
if last and #redis.call('XRANGE', KEYS[1], last, last) > 0 then return {{top[1][1], last}} end
local found = '{NO_MESSAGE}'
local cur = '+'
while found == '{NO_MESSAGE}' do
  local batch = redis.call('XREVRANGE', KEYS[1], cur, '-', 'COUNT', 64)
  for i = 1, #batch do
    if text_of(batch[i][2]) then
      found = batch[i][1]
      break
    end
  end
  if #batch < 64 then break end
  cur = '(' .. batch[#batch][1]
end
redis.call('SET', KEYS[2], found)
if found == '{NO_MESSAGE}' then found = '' end
return {{top[1][1], found}}
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

# -- ids and entries ---------------------------------------------------------------


def stream_id(message_id: str) -> str | None:
    """The Redis stream id of one of our message ids (``msg_<ms>_<seq>`` -> ``ms-seq``)."""
    key = message_id_key(message_id)
    return f"{key[0]}-{key[1]}" if key else None


def stream_key(entry_id: str) -> tuple[int, int]:
    """A stream id as a pair that compares in stream order."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def message_id_of(entry_id: str) -> str:
    ms, seq = stream_key(entry_id)
    return make_message_id(ms, seq)


def _fields(fields: dict[str, str] | list[str]) -> dict[str, str]:
    if isinstance(fields, list):
        return dict(zip(fields[::2], fields[1::2]))
    return fields


def message_from_entry(entry_id: str, fields: dict[str, str] | list[str]) -> ChatMessage:
    """A :class:`ChatMessage` from a stream entry (fields as a dict or a flat list)."""
    fields = _fields(fields)
    return ChatMessage(
        message_id_of(entry_id),
        fields.get("u", ""),
        fields.get("n", ""),
        fields.get("t", ""),
        iso_timestamp(stream_key(entry_id)[0]),
        fields.get("c") or None,
        fields.get("v") == "1",
        fields.get("r") or GENERAL,
    )


def is_relay(fields: dict[str, str] | list[str]) -> bool:
    """Whether an entry of :data:`MESSAGES` is a relay entry (presence, typing), not a message."""
    return "t" not in _fields(fields)


def origin_of(fields: dict[str, str] | list[str]) -> str | None:
    """The origin tag of a message entry (``None`` for entries written before tags)."""
    return _fields(fields).get("o") or None


def latest_bounds(before: str | None, upto: str | None) -> str | None:
    """The ``XREVRANGE`` start for messages with ``id < before`` and ``id <= upto``; ``None`` when
    nothing can match (``before`` is the very first id)."""
    b = stream_id(before) if before is not None else None
    u = stream_id(upto) if upto is not None else None
    if b is not None and (u is None or stream_key(b) <= stream_key(u)):
        return None if b == "0-0" else "(" + b
    return u or "+"


def after_bound(after: str | None) -> str:
    """The ``XRANGE`` start for messages with ``id > after``."""
    a = stream_id(after) if after is not None else None
    return "(" + a if a else "-"


def node_state(raw: Any) -> tuple[str, str, int, bool] | None:
    """``(user_id, status, count, verified)`` from a node's users hash value or hello entry (JSON or dict)."""
    try:
        st = json.loads(raw) if isinstance(raw, str) else raw
        return str(st["user_id"]), str(st["status"]), int(st["count"]), st.get("v") is True
    except (ValueError, KeyError, TypeError):
        return None


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
