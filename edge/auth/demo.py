"""Users for the demo, and the start-up word on how to log in."""

from __future__ import annotations

import logging
from pathlib import Path

from edge.auth.passwords import DEFAULT_SCRYPT, ScryptParams
from edge.auth.records import SessionPolicy
from edge.auth.roles import ROLES
from edge.auth.users import UserStore

logger = logging.getLogger(__name__)

# Known on purpose: the demo is for trying the appliance on one's own machine. Demo
# accounts log in only while the demo runs (UserStore.demo_logins), so a data directory
# later used with a real scanner does not keep a door open with this password.
DEMO_PASSWORD = "edge-demo"


def open_users(
    data_dir: Path,
    *,
    demo: bool,
    sessions: SessionPolicy | None = None,
    kdf: ScryptParams = DEFAULT_SCRYPT,
) -> UserStore:
    """The service's user store; with `demo` and no users yet, one demo user per role
    (name = role, password DEMO_PASSWORD). Logs how to log in, or how to add a user."""
    users = UserStore(data_dir, kdf=kdf, sessions=sessions, demo_logins=demo)
    try:
        if demo and users.count() == 0:
            for role in ROLES:
                users.add_user(role, role, DEMO_PASSWORD, demo=True)
        present = users.users()
    except BaseException:
        users.close()
        raise
    if demo and any(u.demo for u in present):
        names = ", ".join(u.name for u in present if u.demo)
        logger.warning("demo login: user %s, password %r", names, DEMO_PASSWORD)
    elif not any(not u.disabled and (demo or not u.demo) for u in present):
        logger.warning(
            "no user can log in yet: add one with `edge users add NAME --role operator "
            "--data %s` (roles: %s)",
            data_dir,
            ", ".join(ROLES),
        )
    return users
