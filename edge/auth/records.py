"""What the user store hands out: users, principals, new sessions; and the rules for
names and roles."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any, Literal

from edge.auth.errors import BadCredentialError
from edge.auth.roles import ROLES, Role

NAME_PATTERN = r"[a-z][a-z0-9._-]{0,31}"
MAX_TOKEN_CHARS = 128


def digest(secret: str) -> str:
    """SHA-256 hex of a high-entropy secret (session id, CSRF token, script token)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def check_name(name: str) -> None:
    """BadCredentialError unless 1-32 of a-z 0-9 . _ -, starting with a letter."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise BadCredentialError(
            f"user name: expected 1-32 characters a-z, 0-9, '.', '_', '-' starting with a "
            f"letter, got {name[:40]!r}"
        )


def check_role(role: str) -> Role:
    for known in ROLES:
        if role == known:
            return known
    raise BadCredentialError(f"role: expected one of {', '.join(ROLES)}, got {role[:40]!r}")


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    created: str
    changed: str
    disabled: bool = False
    demo: bool = False
    tokens: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "created": self.created,
            "changed": self.changed,
            "disabled": self.disabled,
            "demo": self.demo,
            "tokens": self.tokens,
        }


@dataclass(frozen=True)
class Principal:
    """Who a request is from. `via`: "session" (a browser: CSRF token needed to change
    anything) or "token" (a script's bearer token)."""

    name: str
    role: Role
    via: Literal["session", "token"]
    session_digest: str | None = None
    csrf_digest: str | None = None

    def csrf_ok(self, token: str | None) -> bool:
        """Whether `token` is this session's CSRF token (constant-time)."""
        if self.csrf_digest is None or not token or len(token) > MAX_TOKEN_CHARS:
            return False
        return hmac.compare_digest(digest(token), self.csrf_digest)


@dataclass(frozen=True)
class NewSession:
    """A login: `token` goes in the HttpOnly cookie, `csrf_token` to the page."""

    token: str
    csrf_token: str
    principal: Principal
    max_age_s: int


@dataclass(frozen=True)
class SessionPolicy:
    """A session ends `idle_s` after its last use or `max_s` after the login."""

    idle_s: float = 3600.0
    max_s: float = 12 * 3600.0
