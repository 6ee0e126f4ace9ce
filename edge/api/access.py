"""Who is asking, and whether they may: sessions (cookie + CSRF token) or bearer tokens.

Browsers hold an HttpOnly, SameSite=Strict session cookie and send the session's CSRF
token in the `X-CSRF-Token` header with every state-changing call (the page reads it from
the `edge_csrf` cookie or the login answer). Scripts send `Authorization: Bearer <token>`
and need no CSRF token: a browser never adds that header by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from edge.auth import (
    PERMISSIONS,
    Action,
    CsrfError,
    ForbiddenError,
    NotLoggedInError,
    Principal,
    UserStore,
)

SESSION_COOKIE = "edge_session"
CSRF_COOKIE = "edge_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_bearer = HTTPBearer(
    auto_error=False,
    description="a script token from `edge users token NAME`",
)
_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    description="the session cookie set by POST /api/login (state-changing calls also need "
    f"the {CSRF_HEADER} header)",
)

Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
SessionCookie = Annotated[str | None, Depends(_cookie)]


def _users(request: Request) -> UserStore:
    users = request.app.state.users  # set by create_app
    assert isinstance(users, UserStore)
    return users


def session_principal(request: Request) -> Principal | None:
    """The principal of the request's session cookie, if it has a live one."""
    token = request.cookies.get(SESSION_COOKIE)
    return _users(request).session(token) if token else None


def logged_in(request: Request, bearer: Bearer, session: SessionCookie) -> Principal:
    """Dependency: the request's principal, or 401; CSRF checked on unsafe methods."""
    users = _users(request)
    if bearer is not None:
        found = users.token(bearer.credentials)
        if found is None:
            raise NotLoggedInError("bearer token unknown or revoked")
        return found
    if not session:
        raise NotLoggedInError("log in first (POST /api/login, or the page at /login)")
    found = users.session(session)
    if found is None:
        raise NotLoggedInError("session expired or ended: log in again")
    if request.method not in SAFE_METHODS and not found.csrf_ok(request.headers.get(CSRF_HEADER)):
        raise CsrfError(f"missing or wrong {CSRF_HEADER} header: reload the page and try again")
    return found


LoggedIn = Annotated[Principal, Depends(logged_in)]


def allowed(action: Action) -> Callable[[Principal], Principal]:
    """Dependency: the principal when its role may do `action` (PERMISSIONS), else 403."""
    roles = PERMISSIONS[action]

    def principal(who: LoggedIn) -> Principal:
        if who.role not in roles:
            raise ForbiddenError(
                f"{action}: needs the {' or '.join(roles)} role; {who.name} is a {who.role}"
            )
        return who

    return principal


# Route parameters: `who: MayDecide` is the operator deciding, 403 for anyone else.
MayDecide = Annotated[Principal, Depends(allowed("decide"))]
MayUpload = Annotated[Principal, Depends(allowed("upload"))]
MayReadAudit = Annotated[Principal, Depends(allowed("audit"))]
MayExport = Annotated[Principal, Depends(allowed("export"))]
