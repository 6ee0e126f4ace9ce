"""`POST /api/login`, `POST /api/logout`, `GET /api/me`.

Login answers with the session in an HttpOnly, SameSite=Strict cookie and the CSRF token
both in the body and in a readable `edge_csrf` cookie (for a page reloaded later). Failed
logins are throttled per user name and per client address (429 with Retry-After). Logins,
failed logins and logouts go into the hash-chained audit log (edge/upgrade/audit.py).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from edge.api.access import CSRF_COOKIE, SESSION_COOKIE, LoggedIn
from edge.api.context import AppContext
from edge.auth import PERMISSIONS, LoginFailedError, Principal
from edge.auth.passwords import MAX_PASSWORD_CHARS
from edge.errors import EdgeError
from edge.upgrade import audit

logger = logging.getLogger(__name__)


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64, description="user name")
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_CHARS, description="password")


def _me(who: Principal) -> dict[str, Any]:
    return {
        "name": who.name,
        "role": who.role,
        "via": who.via,
        "may": sorted(action for action, roles in PERMISSIONS.items() if who.role in roles),
    }


def _audit(ctx: AppContext, action: str, name: str, client: str, **details: Any) -> None:
    """Record a login event; a log that cannot be written is said loudly but never locks
    operators out of screening."""
    if ctx.store is None:
        return
    try:
        audit.record(ctx.store.data_dir, action, actor=f"user:{name[:64]}",
                     details={"address": client, **details})  # fmt: skip
    except EdgeError as exc:
        logger.error("audit log: %s of %s not recorded: %s", action, name[:64], exc)


def auth_router(ctx: AppContext) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["login"])

    @router.post("/login")
    def login(body: LoginBody, request: Request, response: Response) -> dict[str, Any]:
        """Log in with name and password: sets the session cookie; returns who logged in
        and the CSRF token to send as X-CSRF-Token with every state-changing call."""
        client = request.client.host if request.client else "unknown"
        keys = [f"user:{body.name.lower()}", f"addr:{client}"]
        ctx.throttle.check(keys)
        try:
            user = ctx.users.authenticate(body.name, body.password)
        except LoginFailedError:
            ctx.throttle.failed(keys)
            _audit(ctx, "login-failed", body.name, client)
            raise
        ctx.throttle.succeeded(keys)
        session = ctx.users.create_session(user)
        _audit(ctx, "login", session.principal.name, client, role=session.principal.role)
        secure = request.url.scheme == "https"
        for name, value, http_only in (
            (SESSION_COOKIE, session.token, True),
            (CSRF_COOKIE, session.csrf_token, False),
        ):
            response.set_cookie(
                name,
                value,
                max_age=session.max_age_s,
                path="/",
                secure=secure,
                httponly=http_only,
                samesite="strict",
            )
        return {**_me(session.principal), "csrf_token": session.csrf_token}

    @router.post("/logout")
    def logout(who: LoggedIn, request: Request, response: Response) -> dict[str, Any]:
        """End this session (a bearer token stays valid: revoke it with the CLI)."""
        ctx.users.end_session(who)
        _audit(ctx, "logout", who.name, request.client.host if request.client else "unknown")
        for name in (SESSION_COOKIE, CSRF_COOKIE):
            response.delete_cookie(name, path="/", samesite="strict")
        return {"logged_out": who.via == "session"}

    @router.get("/me")
    def me(who: LoggedIn) -> dict[str, Any]:
        """Who is logged in, with which role, and the actions that role may take."""
        return _me(who)

    return router
