"""Read positions and mentions in both stores (see core/reads.py)."""

from __future__ import annotations

import sqlite3

from workspace_tui.core.reads import mentioned
from workspace_tui.protocol import ChatMessage, name_key

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS reads (
    name_key TEXT NOT NULL,
    room TEXT NOT NULL,
    message_id TEXT NOT NULL,
    PRIMARY KEY (name_key, room)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mentions (
    name_key TEXT NOT NULL,
    room TEXT NOT NULL,
    message_id TEXT NOT NULL,
    PRIMARY KEY (name_key, room, message_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS mentions_by_message ON mentions (message_id);  -- removal with old messages
"""


def sqlite_save(db: sqlite3.Connection, key: str, room: str, message_id: str) -> None:
    """Move the position forward (never back: an older position from a slow window is ignored)."""
    with db:
        db.execute("INSERT INTO reads (name_key, room, message_id) VALUES (?, ?, ?) ON CONFLICT (name_key, room) "
                   "DO UPDATE SET message_id = excluded.message_id WHERE excluded.message_id > reads.message_id",
                   (key, room, message_id))


def mention_rows(messages: list[ChatMessage]) -> list[tuple[str, str, str]]:
    """``(name key, room, message id)`` for every mention in *messages*, the author's own left out."""
    rows = []
    for m in messages:
        if "@" in m.text:
            own = name_key(m.username)
            rows += [(k, m.room, m.id) for k in mentioned(m.text) if k != own]
    return rows


REDIS_KEY = "workspace:reads"  # hash: "<name key>\x00<room>" -> message id

# Forward-only: KEYS[1] the hash; ARGV: field, message id.
REDIS_SAVE_LUA = """
local now = redis.call('HGET', KEYS[1], ARGV[1])
if (not now) or ARGV[2] > now then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1
"""

# The state of one user's room. KEYS: reads hash, messages stream, rooms' newest-message hash, newest-message
# key (general's, for a stream written before rooms). ARGV: field, username, lowercase "@name", cap, room,
# entries to look at (at most). Returns {position or '', unread, mentions, the room's newest message or ''}.
# Counts the room's messages after the position (others' only) up to `cap`, looking at no more than the
# scan bound of entries (a quiet room in a busy stream may count short), and at most the first 4 KiB of
# each text for the mention.
REDIS_STATE_LUA = """
local newest = redis.call('HGET', KEYS[3], ARGV[5])
if (not newest) and ARGV[5] == 'general' then
  newest = redis.call('GET', KEYS[4])
  if newest == '0-0' then newest = false end
end
newest = newest or ''
local last = redis.call('HGET', KEYS[1], ARGV[1])
if (not last) and ARGV[5] == 'general' then return {'', 0, 0, newest} end  -- a newcomer: no backlog
local cur = '-'  -- a room never read (a first direct message): all of it is new
if last then cur = '(' .. tonumber(string.sub(last, 5, 17)) .. '-' .. tonumber(string.sub(last, 19, 24)) end
local cap, scan, room = tonumber(ARGV[4]), tonumber(ARGV[6]), ARGV[5]
local unread, mentions, seen = 0, 0, 0
while seen < scan and unread < cap do
  local want = scan - seen
  if want > 64 then want = 64 end
  local entries = redis.call('XRANGE', KEYS[2], cur, '+', 'COUNT', want)
  for _, e in ipairs(entries) do
    local f = e[2]
    local name, text, r = nil, nil, 'general'
    for i = 1, #f, 2 do
      if f[i] == 'n' then name = f[i + 1] elseif f[i] == 't' then text = f[i + 1] elseif f[i] == 'r' then r = f[i + 1] end
    end
    if text and r == room and name ~= ARGV[2] then
      unread = unread + 1
      if string.find(string.lower(string.sub(text, 1, 4096)), ARGV[3], 1, true) then mentions = mentions + 1 end
      if unread >= cap then break end
    end
  end
  seen = seen + #entries
  if #entries < want then break end
  cur = '(' .. entries[#entries][1]
end
return {last or '', unread, mentions, newest}
"""
