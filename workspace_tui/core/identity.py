"""Names that belong to people: accounts, what a handshake's proof decides, and the throttle on
wrong secrets. Pure: the store is read and written by the server, through the backend.

A name is *claimed* when its account holds a key hash; an admin-made name waits with an invite
hash until its first connection redeems it with a key. The server keeps only SHA-256 hashes:
keys and invites are 256 random bits, so a fast hash is enough (nothing to brute-force).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, replace
from hashlib import sha256

from workspace_tui.protocol import (
    REFUSED_BAD_INVITE,
    REFUSED_INVITE_REQUIRED,
    REFUSED_KEY_REQUIRED,
    REFUSED_NOT_MEMBER,
    REFUSED_THROTTLED,
    REFUSED_WRONG_KEY,
    name_key,
)

from .state import Refusal


@dataclass(frozen=True, slots=True)
class Account:
    """A name somebody owns (``key_hash``) or will own (``invite_hash``)."""

    name_key: str  # protocol.name_key(username): the identity of the name
    username: str  # the spelling everyone sees
    key_hash: str | None
    invite_hash: str | None
    created_ms: int
    claimed_ms: int | None = None

    @property
    def state(self) -> str:
        return "claimed" if self.key_hash else "invited"


@dataclass(frozen=True, slots=True)
class Claim:
    """Write *account* if the stored one is still *expected* (``None``: no account yet). The backend
    does the compare and the write at once, so two handshakes cannot both claim a name."""

    account: Account
    expected: Account | None


def secret_hash(secret: str) -> str:
    return sha256(secret.encode()).hexdigest()


def _matches(secret: str | None, stored_hash: str | None) -> bool:
    return bool(secret and stored_hash) and hmac.compare_digest(secret_hash(secret), stored_hash)  # type: ignore[arg-type]


def decide(mode: str, username: str, key: str | None, invite: str | None, account: Account | None,
           now_ms: int, key_for: str) -> bool | Claim | Refusal:
    """What a handshake for *username* proves against its *account*: ``True`` (verified), ``False``
    (admitted unverified), a :class:`Claim` to write, or a refusal. *key_for* names the name in
    reasons. Wrong secrets are :func:`is_wrong_secret` refusals, for the throttle."""
    if account is None:
        if mode == "invite":
            return Refusal(403, f"{key_for} is not a member of this workspace: ask an admin for an invite "
                                f"(workspace users add {username})", REFUSED_NOT_MEMBER)
        if key:
            return Claim(Account(name_key(username), username, secret_hash(key), None, now_ms, now_ms), None)
        return False
    if invite:
        if not _matches(invite, account.invite_hash):
            return Refusal(401, f"that invite for {account.username} is wrong or was already used: ask an admin "
                                f"for a new one (workspace users reset {account.username})", REFUSED_BAD_INVITE)
        if not key:
            return Refusal(400, "bad request: an invite is redeemed together with a key (key.<KEY>)")
        return Claim(replace(account, key_hash=secret_hash(key), invite_hash=None, claimed_ms=now_ms), account)
    if account.key_hash is None:
        return Refusal(401, f"{account.username} has an invite waiting: redeem it with `workspace login` "
                            f"(or the chat's join screen)", REFUSED_INVITE_REQUIRED)
    if not key:
        return Refusal(401, f"{account.username} is claimed on this server and this device has no key for it: "
                            f"on a device that has it run `workspace key show`, then here `workspace login --import`",
                       REFUSED_KEY_REQUIRED)
    if not _matches(key, account.key_hash):
        return Refusal(401, f"wrong key for {account.username}: this device's key is not the one that claimed it "
                            f"(if it is lost, an admin can reset the name: `workspace users reset {account.username}` "
                            "prints a new invite)",
                       REFUSED_WRONG_KEY)
    return True


def is_wrong_secret(refusal: Refusal) -> bool:
    return refusal.code in (REFUSED_WRONG_KEY, REFUSED_BAD_INVITE)


FREE_TRIES = 3


class Throttle:
    """Growing delays after wrong keys or invites, per name and per address: a few free tries,
    then 1 s, 2 s, 4 s ... up to ``MAX_DELAY`` during which every try is refused with 429.

    At most ``MAX_ENTRIES`` are kept (the oldest go first), so many addresses cannot grow it."""

    MAX_DELAY = 300.0
    FORGET_AFTER = 3600.0  # an entry this long without a failure is dropped
    MAX_ENTRIES = 50_000

    def __init__(self, free_tries: int = FREE_TRIES) -> None:
        self.free_tries = free_tries
        self._entries: dict[str, tuple[int, float, float]] = {}  # subject -> (failures, blocked until, last)

    def wait(self, subjects: tuple[str, ...], now: float) -> float:
        """Seconds until a try for these subjects may be decided (0: now)."""
        wait = 0.0
        for s in subjects:
            entry = self._entries.get(s)
            if entry is not None and entry[1] > now:
                wait = max(wait, entry[1] - now)
        return wait

    def failed(self, subjects: tuple[str, ...], now: float) -> None:
        entries = self._entries
        for s in subjects:
            failures, _, _ = entries.pop(s, (0, 0.0, 0.0))
            failures += 1
            over = failures - self.free_tries
            until = now + min(self.MAX_DELAY, 2.0 ** (over - 1)) if over > 0 else 0.0
            entries[s] = (failures, until, now)
            while len(entries) > self.MAX_ENTRIES:
                del entries[next(iter(entries))]

    def prune(self, now: float) -> None:
        cutoff = now - self.FORGET_AFTER
        for s in [s for s, (_, until, last) in self._entries.items() if last < cutoff and until <= now]:
            del self._entries[s]

    def refusal(self, wait: float, what: str = "keys or invites") -> Refusal:
        seconds = max(1, int(wait + 0.999))
        return Refusal(429, f"too many wrong {what} lately: try again in {seconds} s", REFUSED_THROTTLED,
                       retry_after=seconds)
