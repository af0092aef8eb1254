"""``workspace users``: an admin's view of the accounts of one store, with the server running or not."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from workspace_tui.core.identity import Account, Claim, secret_hash
from workspace_tui.protocol import name_key, validate_username

from .accounts import (
    COLUMNS, REDIS_CAS_LUA, REDIS_KEY, SQLITE_SCHEMA, from_json, new_secret, sqlite_get, sqlite_put, to_json,
)
from .sqlite import open_database


class AccountAdmin:
    """``workspace users``: the accounts of one store (a SQLite file, or Redis with a broker URL)."""

    def __init__(self, db_path: str | None = None, broker: str | None = None) -> None:
        self._db: sqlite3.Connection | None = None
        self._redis: Any = None
        if broker:
            import redis

            self._redis = redis.Redis.from_url(broker, decode_responses=True, socket_connect_timeout=2.0)
            self._redis.ping()
        else:
            self._db = open_database(str(db_path))
            self._db.executescript(SQLITE_SCHEMA)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
        if self._redis is not None:
            self._redis.close()

    def list(self) -> list[Account]:
        if self._db is not None:
            rows = self._db.execute(f"SELECT {COLUMNS} FROM accounts ORDER BY name_key").fetchall()
            return [Account(*row) for row in rows]
        raw = self._redis.hgetall(REDIS_KEY)
        return sorted((a for k, v in raw.items() if (a := from_json(k, v)) is not None), key=lambda a: a.name_key)

    def get(self, username: str) -> Account | None:
        key = name_key(username)
        if self._db is not None:
            return sqlite_get(self._db, key)
        return from_json(key, self._redis.hget(REDIS_KEY, key))

    def _put(self, claim: Claim) -> bool:
        if self._db is not None:
            return sqlite_put(self._db, claim)
        expected = to_json(claim.expected) if claim.expected is not None else ""
        return bool(self._redis.eval(REDIS_CAS_LUA, 1, REDIS_KEY, claim.account.name_key,
                                     to_json(claim.account), expected))

    def add(self, username: str) -> str:
        """Create *username* with a one-time invite, which is returned (only its hash is kept)."""
        reason = validate_username(username)
        if reason:
            raise ValueError(reason)
        existing = self.get(username)
        if existing is not None:
            raise ValueError(f"{existing.username} already exists ({existing.state}); "
                             f"`workspace users reset {existing.username}` gives it a new invite")
        invite = new_secret()
        account = Account(name_key(username), username, None, secret_hash(invite), _now_ms())
        if not self._put(Claim(account, None)):
            raise ValueError(f"{username} was created meanwhile")
        return invite

    def reset(self, username: str) -> str:
        """Forget *username*'s key (lost, or a device to lock out) and give it a new invite."""
        existing = self.get(username)
        if existing is None:
            raise LookupError(f"no account named {username}")
        invite = new_secret()
        account = Account(existing.name_key, existing.username, None, secret_hash(invite), existing.created_ms)
        if not self._put(Claim(account, existing)):
            raise ValueError(f"{username} changed meanwhile; try again")
        return invite

    def remove(self, username: str) -> Account:
        existing = self.get(username)
        if existing is None:
            raise LookupError(f"no account named {username}")
        if self._db is not None:
            with self._db:
                self._db.execute("DELETE FROM accounts WHERE name_key = ?", (existing.name_key,))
        else:
            self._redis.hdel(REDIS_KEY, existing.name_key)
        return existing



def _now_ms() -> int:
    return time.time_ns() // 1_000_000
