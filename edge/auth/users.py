"""Local users, their login sessions and their script tokens, in `DATA/users.db`.

A file of its own, not a table of the image log: `edge users add` must work while the
service holds the image log, the file is created readable by its owner only (0600), and
exporting or copying the image log never carries password hashes along.

Sessions live in the same file, so operators stay logged in across a service restart;
only SHA-256 digests of session ids, CSRF tokens and script tokens are stored (each is 256
random bits, so a digest is enough and lookups need no slow hash), so a copy of the file
logs nobody in.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from edge.auth.errors import (
    BadCredentialError,
    LoginFailedError,
    UnknownUserError,
    UserExistsError,
)
from edge.auth.passwords import (
    DEFAULT_SCRYPT,
    MAX_PASSWORD_CHARS,
    ScryptParams,
    hash_password,
    needs_rehash,
    verify_password,
)
from edge.auth.records import (
    MAX_TOKEN_CHARS,
    NAME_PATTERN,
    NewSession,
    Principal,
    SessionPolicy,
    User,
    check_name,
    check_role,
    digest,
)

logger = logging.getLogger(__name__)

USERS_DB = "users.db"
TOKEN_PREFIX = "edge_"
TOUCH_EVERY_S = 60.0  # a session's last use is written at most this often

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password TEXT NOT NULL,          -- $scrypt$ PHC string: parameters, salt, key
    created TEXT NOT NULL,
    changed TEXT NOT NULL,           -- last change of password, role or state
    disabled INTEGER NOT NULL DEFAULT 0,
    demo INTEGER NOT NULL DEFAULT 0  -- made by the demo: logs in only while the demo runs
);
CREATE TABLE IF NOT EXISTS sessions (
    id_sha256 TEXT PRIMARY KEY,
    name TEXT NOT NULL REFERENCES users(name),
    csrf_sha256 TEXT NOT NULL,
    created_s REAL NOT NULL,
    last_used_s REAL NOT NULL,
    expires_s REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_name ON sessions(name);
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL REFERENCES users(name),
    label TEXT,
    created TEXT NOT NULL,
    last_used TEXT
);
"""


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class UserStore:
    """Users, sessions and tokens in `data_dir/users.db`. Thread-safe; close() it.

    `kdf`: scrypt parameters for new hashes (tests lower them; stored hashes keep theirs);
    `demo_logins`: whether accounts made by the demo may log in (only while it runs).
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        kdf: ScryptParams = DEFAULT_SCRYPT,
        sessions: SessionPolicy | None = None,
        demo_logins: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(data_dir) / USERS_DB
        self.kdf = kdf
        self.policy = sessions or SessionPolicy()
        self.demo_logins = demo_logins
        self._clock = clock
        self._lock = threading.Lock()
        self._dummy_hash: str | None = None
        # Each scrypt run takes kdf.memory_bytes: a burst of logins must not take them all.
        self._kdf_slots = threading.BoundedSemaphore(2)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Created 0600 before SQLite opens it; SQLite gives its -wal and -shm files the
        # database file's permissions.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        if self.path.stat().st_mode & 0o077:
            logger.warning("%s was readable by others: made 0600", self.path)
            os.chmod(self.path, 0o600)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA busy_timeout = 5000")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.executescript(_SCHEMA)

    # -- users -------------------------------------------------------------------------

    def add_user(self, name: str, role: str, password: str, *, demo: bool = False) -> User:
        """A new user; UserExistsError when the name is taken."""
        check_name(name)
        checked_role = check_role(role)
        encoded = hash_password(password, self.kdf)
        now = _now_iso()
        try:
            with self._lock:
                self._db.execute(
                    "INSERT INTO users (name, role, password, created, changed, demo) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (name, checked_role, encoded, now, now, int(demo)),
                )
        except sqlite3.IntegrityError:
            raise UserExistsError(f"user {name!r} exists already") from None
        logger.info("user %s added with role %s", name, checked_role)
        return User(name, checked_role, now, now, demo=demo)

    def set_password(self, name: str, password: str) -> None:
        """A new password; the user's sessions end, and a demo account becomes a real one."""
        encoded = hash_password(password, self.kdf)
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._require(name)
            self._db.execute(
                "UPDATE users SET password = ?, changed = ?, demo = 0 WHERE name = ?",
                (encoded, _now_iso(), name),
            )
            self._db.execute("DELETE FROM sessions WHERE name = ?", (name,))
        logger.info("password of %s changed; its sessions ended", name)

    def set_disabled(self, name: str, disabled: bool) -> None:
        """Disable (sessions end, tokens refused) or enable a user; rows stay so decisions
        keep naming who made them."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._require(name)
            self._db.execute(
                "UPDATE users SET disabled = ?, changed = ? WHERE name = ?",
                (int(disabled), _now_iso(), name),
            )
            if disabled:
                self._db.execute("DELETE FROM sessions WHERE name = ?", (name,))

    def users(self) -> list[User]:
        """Every user, by name, with the number of script tokens each holds."""
        with self._lock:
            rows = self._db.execute(
                "SELECT u.*, (SELECT count(*) FROM tokens t WHERE t.name = u.name) AS tokens "
                "FROM users u ORDER BY u.name"
            ).fetchall()
        return [self._user(row) for row in rows]

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM users").fetchone()[0])

    def authenticate(self, name: str, password: str) -> User:
        """The user when name and password match; LoginFailedError otherwise.

        An unknown name costs the same scrypt work as a known one, so timing does not tell
        which names exist; whether an account is disabled is said only with its password.
        """
        row = None
        if re.fullmatch(NAME_PATTERN, name) and len(password) <= MAX_PASSWORD_CHARS:
            with self._lock:
                row = self._db.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
        with self._kdf_slots:
            matched = verify_password(password, row["password"] if row else self._dummy())
        if row is None or not matched:
            raise LoginFailedError("wrong user name or password")
        user = self._user(row)
        if user.disabled:
            raise LoginFailedError(f"account {name!r} is disabled: ask a technician")
        if user.demo and not self.demo_logins:
            raise LoginFailedError(
                f"{name!r} is a demo account and logs in only while the demo runs; "
                f"give it a password with `edge users passwd {name}` to keep it"
            )
        if needs_rehash(row["password"], self.kdf):
            rehashed = hash_password(password, self.kdf)  # slow: outside the lock
            with self._lock:
                self._db.execute("UPDATE users SET password = ? WHERE name = ?", (rehashed, name))
        return user

    # -- sessions ----------------------------------------------------------------------

    def create_session(self, user: User) -> NewSession:
        """A new session for a user who just logged in (expired ones are purged here)."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = self._clock()
        expires = now + self.policy.max_s
        with self._lock:
            self._db.execute(
                "DELETE FROM sessions WHERE expires_s <= ? OR last_used_s <= ?",
                (now, now - self.policy.idle_s),
            )
            self._db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)",
                (digest(token), user.name, digest(csrf), now, now, expires),
            )
        principal = Principal(user.name, user.role, "session", digest(token), digest(csrf))
        return NewSession(token, csrf, principal, int(self.policy.max_s))

    def session(self, token: str) -> Principal | None:
        """Who holds this session cookie; None when unknown, expired or the user disabled."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        hashed = digest(token)
        now = self._clock()
        with self._lock:
            row = self._db.execute(
                "SELECT s.*, u.role, u.disabled, u.demo FROM sessions s "
                "JOIN users u ON u.name = s.name WHERE s.id_sha256 = ?",
                (hashed,),
            ).fetchone()
            if row is None:
                return None
            if (
                row["expires_s"] <= now
                or row["last_used_s"] + self.policy.idle_s <= now
                or row["disabled"]
                or (row["demo"] and not self.demo_logins)
            ):
                self._db.execute("DELETE FROM sessions WHERE id_sha256 = ?", (hashed,))
                return None
            if now - row["last_used_s"] >= TOUCH_EVERY_S:
                self._db.execute(
                    "UPDATE sessions SET last_used_s = ? WHERE id_sha256 = ?", (now, hashed)
                )
        return Principal(
            row["name"], check_role(row["role"]), "session", hashed, row["csrf_sha256"]
        )

    def end_session(self, principal: Principal) -> None:
        """Log out: the session's cookie no longer works."""
        if principal.session_digest is not None:
            with self._lock:
                self._db.execute(
                    "DELETE FROM sessions WHERE id_sha256 = ?", (principal.session_digest,)
                )

    # -- script tokens -------------------------------------------------------------------

    def create_token(self, name: str, label: str | None = None) -> str:
        """A new bearer token for scripts acting as `name` (shown once; only its digest
        is kept)."""
        if label is not None and len(label) > 200:
            raise BadCredentialError(f"token label: at most 200 characters, got {len(label)}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._require(name)
            self._db.execute(
                "INSERT INTO tokens (token_sha256, name, label, created) VALUES (?, ?, ?, ?)",
                (digest(token), name, label, _now_iso()),
            )
        logger.info("script token made for %s", name)
        return token

    def revoke_tokens(self, name: str) -> int:
        """Revoke every token of `name`; returns how many there were."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._require(name)
            cursor = self._db.execute("DELETE FROM tokens WHERE name = ?", (name,))
        return cursor.rowcount

    def token(self, token: str) -> Principal | None:
        """Who holds this bearer token; None when unknown or the user disabled."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_CHARS:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT t.id, t.last_used, u.name, u.role, u.disabled FROM tokens t "
                "JOIN users u ON u.name = t.name WHERE t.token_sha256 = ?",
                (digest(token),),
            ).fetchone()
            if row is None or row["disabled"]:
                return None
            today = _now_iso()[:10]
            if (row["last_used"] or "")[:10] != today:  # a write a day at most
                self._db.execute(
                    "UPDATE tokens SET last_used = ? WHERE id = ?", (_now_iso(), row["id"])
                )
        return Principal(row["name"], check_role(row["role"]), "token")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- helpers -------------------------------------------------------------------------

    def _require(self, name: str) -> None:
        if self._db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone() is None:
            raise UnknownUserError(f"no user {name[:40]!r}")

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = hash_password(secrets.token_urlsafe(16), self.kdf)
        return self._dummy_hash

    @staticmethod
    def _user(row: sqlite3.Row) -> User:
        keys = row.keys()
        return User(
            name=row["name"],
            role=check_role(row["role"]),
            created=row["created"],
            changed=row["changed"],
            disabled=bool(row["disabled"]),
            demo=bool(row["demo"]),
            tokens=int(row["tokens"]) if "tokens" in keys else 0,
        )
