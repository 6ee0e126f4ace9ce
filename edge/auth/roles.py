"""Roles and what each may change: one table, read by the API and the documentation.

Reading (frames, images, health, models, test runs) needs any logged-in role; every
state-changing call needs one of the roles listed for its action.
"""

from __future__ import annotations

from typing import Literal, get_args

Role = Literal["operator", "technician", "vendor"]
ROLES: tuple[Role, ...] = get_args(Role)

Action = Literal["decide", "upload", "upgrade", "rollback", "test", "export", "audit"]
PERMISSIONS: dict[Action, tuple[Role, ...]] = {
    "decide": ("operator",),  # clear / search / threat on a bag
    # Operators rescan a bag from a file; technicians screen test images when commissioning.
    "upload": ("operator", "technician"),
    "upgrade": ("technician",),
    "rollback": ("technician",),
    "test": ("technician", "vendor"),  # regression and acceptance runs
    "export": ("vendor",),  # logged images to a data set for labelling
    "audit": ("technician", "vendor"),  # read the audit log (a read, but not for operators)
}


def may(role: str, action: Action) -> bool:
    return role in PERMISSIONS[action]
