"""The dashboard's accounts, sessions and audit log: the only tables it writes.

Passwords are stored as Argon2id hashes (argon2-cffi, memory-hard). A session is a
random token in an HttpOnly cookie; the database keeps only its SHA-256, so a copy
of the database opens no session. A session ends after `idle` without a request or
`lifetime` after the login, whichever comes first. Every login (good or bad), logout
and trace query is a row of `web_log`.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from kiosk.central.store import Store
from kiosk.errors import ConfigError

AUTHORITY = "authority"
INSPECTOR = "inspector"
ROLES = (AUTHORITY, INSPECTOR)
USERNAME_MAX = 64
MINUTE_MS = 60_000
# Failed sign-ins within THROTTLE_MINUTES above which further attempts are refused unchecked:
# per account (guessing one password) and per client address (trying many accounts).
THROTTLE_MINUTES = 15
ACCOUNT_FAILURES = 5
ADDRESS_FAILURES = 20

SCHEMA = """
CREATE TABLE IF NOT EXISTS web_accounts (
    username TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    disabled SMALLINT NOT NULL
);
CREATE TABLE IF NOT EXISTS web_sessions (
    token_hash TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    csrf TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS web_log (
    ts BIGINT NOT NULL,
    username TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    address TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS web_log_ts ON web_log (ts);
CREATE INDEX IF NOT EXISTS web_log_action_ts ON web_log (action, ts);
"""

# A hash of a password nobody has, checked when the user is unknown so that a wrong
# username takes as long as a wrong password.
_HASHER = PasswordHasher()  # argon2-cffi's defaults: Argon2id, RFC 9106's low-memory profile (64 MiB)
_DUMMY = _HASHER.hash(secrets.token_urlsafe(16))
# Cheap parameters for sample databases and tests only: a real account gets the defaults.
LIGHT = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)


@dataclass(frozen=True)
class Account:
    """A dashboard user: a name and a role."""

    username: str
    role: str

    @property
    def may_trace(self) -> bool:
        """Only the authority may run contact tracing."""
        return self.role == AUTHORITY


@dataclass(frozen=True)
class Session:
    """A signed-in user's session: who, until when, and the token forms must echo."""

    account: Account
    expires_ms: int
    csrf: str


@dataclass(frozen=True)
class LogEntry:
    """One line of the audit log."""

    ts: int
    username: str
    action: str
    detail: str
    address: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    """Accounts, sessions and the audit log, in the central database."""

    def __init__(
        self,
        store: Store,
        *,
        idle_ms: int = 30 * 60_000,
        lifetime_ms: int = 12 * 3_600_000,
        hasher: PasswordHasher = _HASHER,
        schema: bool = True,
    ) -> None:
        self._store, self.idle_ms, self.lifetime_ms, self._hasher = store, idle_ms, lifetime_ms, hasher
        if schema:  # the dashboard makes sure of its tables once, not per request
            store.ensure_schema(SCHEMA)

    def add(self, username: str, role: str, password: str, *, now_ms: int) -> None:
        """Create an account, or replace its role and password (and enable it)."""
        _check_account(username, role, password)
        sql = (
            "INSERT INTO web_accounts (username, role, password_hash, created_ms, disabled)"
            " VALUES (?, ?, ?, ?, 0) ON CONFLICT (username) DO UPDATE SET role = excluded.role,"
            " password_hash = excluded.password_hash, disabled = 0"
        )
        self._store.write(sql, (username, role, self._hasher.hash(password), now_ms))
        self._store.commit()

    def disable(self, username: str) -> bool:
        """Disable an account and end its sessions; False when there is no such account."""
        found = self._store.write("UPDATE web_accounts SET disabled = 1 WHERE username = ?", (username,))
        self._store.write("DELETE FROM web_sessions WHERE username = ?", (username,))
        self._store.commit()
        return found > 0

    def accounts(self) -> list[tuple[str, str, bool]]:
        """(username, role, disabled) of every account."""
        rows = self._store.query("SELECT username, role, disabled FROM web_accounts ORDER BY username")
        return [(str(u), str(r), bool(d)) for u, r, d in rows]

    def authenticate(self, username: str, password: str) -> Account | None:
        """The account when the password is right and the account enabled; None otherwise."""
        rows = self._store.query(
            "SELECT role, password_hash FROM web_accounts WHERE username = ? AND disabled = 0",
            (username[:USERNAME_MAX],),
        )
        stored = str(rows[0][1]) if rows else _DUMMY
        try:
            _HASHER.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        return Account(username, str(rows[0][0])) if rows else None

    def throttled(self, username: str, address: str, *, now_ms: int) -> str | None:
        """Why a sign-in must be refused unchecked ("account" or "address"), None when it may be tried.

        Counts the logged `login_failed` lines of the last THROTTLE_MINUTES: the limit needs no
        state of its own, holds across several dashboard processes, and lifts by itself.
        """
        sql = (
            "SELECT SUM(CASE WHEN username = ? THEN 1 ELSE 0 END),"
            " SUM(CASE WHEN address = ? THEN 1 ELSE 0 END)"
            " FROM web_log WHERE action = 'login_failed' AND ts > ? AND ts <= ?"
        )
        since = now_ms - THROTTLE_MINUTES * MINUTE_MS
        by_account, by_address = self._store.query(sql, (username[:USERNAME_MAX], address, since, now_ms))[0]
        if int(by_account or 0) >= ACCOUNT_FAILURES:
            return "account"
        if int(by_address or 0) >= ADDRESS_FAILURES:
            return "address"
        return None

    def open_session(self, account: Account, *, now_ms: int) -> str:
        """Start a session; the token for the cookie."""
        token = secrets.token_urlsafe(32)
        sql = (
            "INSERT INTO web_sessions (token_hash, username, created_ms, expires_ms, csrf)"
            " VALUES (?, ?, ?, ?, ?)"
        )
        expires = now_ms + min(self.idle_ms, self.lifetime_ms)
        self._store.write(sql, (_digest(token), account.username, now_ms, expires, secrets.token_urlsafe(24)))
        self._store.commit()
        return token

    def session(self, token: str, *, now_ms: int) -> Session | None:
        """The live session of a cookie token, its idle time restarted; None when unknown or expired."""
        sql = (
            "SELECT s.username, a.role, s.created_ms, s.expires_ms, s.csrf FROM web_sessions s"
            " JOIN web_accounts a ON a.username = s.username WHERE s.token_hash = ? AND a.disabled = 0"
        )
        rows = self._store.query(sql, (_digest(token),))
        if not rows or int(rows[0][3]) <= now_ms:
            return None
        username, role, created, expires, csrf = rows[0]
        later = min(now_ms + self.idle_ms, int(created) + self.lifetime_ms)
        if later - int(expires) >= MINUTE_MS:  # a write (and fsync) per minute at most, not per page
            self._store.write(
                "UPDATE web_sessions SET expires_ms = ? WHERE token_hash = ?", (later, _digest(token))
            )
            self._store.commit()
            expires = later
        return Session(Account(str(username), str(role)), int(expires), str(csrf))

    def close_session(self, token: str, *, now_ms: int) -> None:
        """End a session (logout), and drop every expired one while at it."""
        self._store.write(
            "DELETE FROM web_sessions WHERE token_hash = ? OR expires_ms <= ?", (_digest(token), now_ms)
        )
        self._store.commit()

    def log(self, entry: LogEntry) -> None:
        """Append to the audit log (committed at once: a log that may be rolled back proves nothing)."""
        sql = "INSERT INTO web_log (ts, username, action, detail, address) VALUES (?, ?, ?, ?, ?)"
        self._store.write(sql, (entry.ts, entry.username, entry.action, entry.detail, entry.address))
        self._store.commit()

    def entries(self, *, limit: int, offset: int = 0) -> list[LogEntry]:
        """The audit log, newest first."""
        sql = "SELECT ts, username, action, detail, address FROM web_log ORDER BY ts DESC LIMIT ? OFFSET ?"
        rows = self._store.query(sql, (limit, offset))
        return [LogEntry(int(t), str(u), str(a), str(d), str(ad)) for t, u, a, d, ad in rows]


def _check_account(username: str, role: str, password: str) -> None:
    if not username or len(username) > USERNAME_MAX or not username.isprintable() or " " in username:
        raise ConfigError(f"username {username!r}: 1 to {USERNAME_MAX} printable characters, no spaces")
    if role not in ROLES:
        raise ConfigError(f"role {role!r}: must be one of {', '.join(ROLES)}")
    if len(password) < 10:
        raise ConfigError("password: at least 10 characters")
