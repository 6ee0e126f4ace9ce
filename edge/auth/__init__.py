"""Local users with roles (operator, technician, vendor), login sessions, script tokens and
login throttling. `UserStore` keeps them in `DATA/users.db`."""

from edge.auth.errors import (
    AuthError,
    CsrfError,
    ForbiddenError,
    LoginFailedError,
    LoginThrottledError,
    NotLoggedInError,
    UnknownUserError,
    UserExistsError,
)
from edge.auth.passwords import DEFAULT_SCRYPT, ScryptParams, hash_password, verify_password
from edge.auth.records import NewSession, Principal, SessionPolicy, User
from edge.auth.roles import PERMISSIONS, ROLES, Action, Role, may
from edge.auth.throttle import LoginThrottle
from edge.auth.users import UserStore

__all__ = [
    "DEFAULT_SCRYPT",
    "PERMISSIONS",
    "ROLES",
    "Action",
    "AuthError",
    "CsrfError",
    "ForbiddenError",
    "LoginFailedError",
    "LoginThrottle",
    "LoginThrottledError",
    "NewSession",
    "NotLoggedInError",
    "Principal",
    "Role",
    "ScryptParams",
    "SessionPolicy",
    "UnknownUserError",
    "User",
    "UserExistsError",
    "UserStore",
    "hash_password",
    "may",
    "verify_password",
]
