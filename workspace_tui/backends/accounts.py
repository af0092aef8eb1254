"""Accounts (who owns which name) in both stores, for the server and for ``workspace users``.

The server reads an account per handshake and writes one per claim; an admin adds, removes and
resets them, with the server running or not (SQLite in WAL mode and Redis both take a second
writer). A write is a compare-and-set against the account the decision was made on, so two
handshakes claiming one name at once cannot both win, and an admin's reset is never undone by a
handshake decided just before it.
"""

from __future__ import annotations

import json
import secrets
import sqlite3

from workspace_tui.core.identity import Account, Claim

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    name_key TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    key_hash TEXT,
    invite_hash TEXT,
    created_ms INTEGER NOT NULL,
    claimed_ms INTEGER
) WITHOUT ROWID;
"""
COLUMNS = "name_key, username, key_hash, invite_hash, created_ms, claimed_ms"

REDIS_KEY = "workspace:accounts"  # hash: name key -> account JSON

# Write ARGV[2] (an account's JSON) at KEYS[1][ARGV[1]] if the field still holds ARGV[3] ('' = absent).
REDIS_CAS_LUA = """
local now = redis.call('HGET', KEYS[1], ARGV[1])
if (now or '') ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


def new_secret() -> str:
    """A key or an invite: 256 random bits, URL- and header-safe."""
    return secrets.token_urlsafe(32)


def to_json(account: Account) -> str:
    return json.dumps([account.username, account.key_hash, account.invite_hash, account.created_ms,
                       account.claimed_ms], separators=(",", ":"))


def from_json(key: str, raw: str | None) -> Account | None:
    if not raw:
        return None
    username, key_hash, invite_hash, created, claimed = json.loads(raw)
    return Account(key, username, key_hash, invite_hash, created, claimed)


# -- SQLite --------------------------------------------------------------------------


def sqlite_get(db: sqlite3.Connection, key: str) -> Account | None:
    row = db.execute(f"SELECT {COLUMNS} FROM accounts WHERE name_key = ?", (key,)).fetchone()
    return Account(*row) if row else None


def sqlite_put(db: sqlite3.Connection, claim: Claim) -> bool:
    """Write ``claim.account`` if the stored account is still ``claim.expected``; commits."""
    a, expected = claim.account, claim.expected
    with db:
        if expected is None:
            cur = db.execute(f"INSERT OR IGNORE INTO accounts ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                             (a.name_key, a.username, a.key_hash, a.invite_hash, a.created_ms, a.claimed_ms))
        else:
            cur = db.execute(
                "UPDATE accounts SET username = ?, key_hash = ?, invite_hash = ?, claimed_ms = ? WHERE name_key = ?"
                " AND key_hash IS ? AND invite_hash IS ?",
                (a.username, a.key_hash, a.invite_hash, a.claimed_ms, a.name_key, expected.key_hash,
                 expected.invite_hash),
            )
    return cur.rowcount == 1
