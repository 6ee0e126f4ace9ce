"""Errors of users, sessions and logins; each carries the HTTP status the API answers with."""

from __future__ import annotations

import math

from edge.errors import BadInputError, EdgeError


class AuthError(EdgeError):
    """A request the appliance will not serve for who is (not) asking.

    `http_headers()` go out with the error response (Retry-After, WWW-Authenticate).
    """

    http_status = 401

    def http_headers(self) -> dict[str, str]:
        return {}


class NotLoggedInError(AuthError):
    """No session cookie or bearer token, or one that expired or was revoked."""

    def http_headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="edge"'}


class LoginFailedError(AuthError):
    """Wrong user name or password (the message never says which)."""


class ForbiddenError(AuthError):
    """Logged in, but the user's role may not do this."""

    http_status = 403


class CsrfError(ForbiddenError):
    """A state-changing call with a session cookie but without its CSRF token."""


class LoginThrottledError(AuthError):
    """Too many failed logins for this user name or client address; try again later."""

    http_status = 429

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def http_headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(self.retry_after_s)))}


class BadCredentialError(BadInputError):
    """A user name, role or password that breaks the rules (length, characters)."""


class UserExistsError(EdgeError):
    """`edge users add` for a name that is taken."""

    http_status = 409


class UnknownUserError(EdgeError):
    """No user of that name."""

    http_status = 404
