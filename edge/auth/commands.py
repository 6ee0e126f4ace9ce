"""`edge users add|passwd|list|token|disable|enable`: local users of the appliance.

Passwords are read with getpass on a terminal (asked twice), else as one line of stdin
(`--password-stdin` forces stdin), never from the command line where `ps` would show them.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from edge.auth.errors import BadCredentialError
from edge.auth.passwords import MAX_PASSWORD_CHARS, check_password
from edge.auth.roles import ROLES
from edge.auth.users import UserStore


def add_users_parser(verbs: Any, common: argparse.ArgumentParser) -> None:
    """Add `edge users ...` to the `edge` command's verbs."""
    p = verbs.add_parser("users", help="local users: operators, technicians, vendors")
    kinds = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    a = kinds.add_parser("add", parents=[common], help="add a user")
    a.add_argument("name", help="user name: 1-32 of a-z 0-9 . _ - (starting with a letter)")
    a.add_argument("--role", required=True, choices=ROLES, help="what the user may do")
    a.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    a.add_argument("--json", action="store_true", help="print one JSON document")
    a.set_defaults(func=cmd_add)

    w = kinds.add_parser("passwd", parents=[common], help="set a user's password")
    w.add_argument("name")
    w.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    w.set_defaults(func=cmd_passwd)

    ls = kinds.add_parser("list", parents=[common], help="list users")
    ls.add_argument("--json", action="store_true", help="print one JSON document")
    ls.set_defaults(func=cmd_list)

    t = kinds.add_parser(
        "token", parents=[common], help="a bearer token for scripts acting as a user"
    )
    t.add_argument("name")
    t.add_argument("--label", help="what the token is for (shown by `edge users list`)")
    t.add_argument("--revoke", action="store_true", help="revoke every token of the user")
    t.add_argument("--json", action="store_true", help="print one JSON document")
    t.set_defaults(func=cmd_token)

    for action, disabled in (("disable", True), ("enable", False)):
        d = kinds.add_parser(
            action,
            parents=[common],
            help="stop a user logging in (sessions end)" if disabled else "let a user log in",
        )
        d.add_argument("name")
        d.set_defaults(func=cmd_disable, disabled=disabled)


def _open(args: argparse.Namespace) -> UserStore:
    from edge.cli import default_data_dir
    from edge.config import load_config

    config = load_config(Path(args.config) if args.config else None)
    return UserStore(Path(args.data or config.store.data_dir or default_data_dir()))


def read_password(from_stdin: bool, confirm: bool) -> str:
    """A password from the terminal (asked twice when `confirm`) or one line of stdin."""
    if not from_stdin and sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if confirm and getpass.getpass("again: ") != password:
            raise BadCredentialError("password: the two entries differ")
    else:
        password = sys.stdin.readline(MAX_PASSWORD_CHARS + 2).removesuffix("\n")
        password = password.removesuffix("\r")
    check_password(password)
    return password


def _print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")


def cmd_add(args: argparse.Namespace) -> int:
    password = read_password(args.password_stdin, confirm=True)
    users = _open(args)
    try:
        user = users.add_user(args.name, args.role, password)
    finally:
        users.close()
    if args.json:
        _print_json(user.as_json())
    else:
        print(f"added {user.name} ({user.role}) in {users.path}")
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    password = read_password(args.password_stdin, confirm=True)
    users = _open(args)
    try:
        users.set_password(args.name, password)
    finally:
        users.close()
    print(f"password of {args.name} changed; its sessions ended")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    users = _open(args)
    try:
        found = users.users()
    finally:
        users.close()
    if args.json:
        _print_json({"users": [u.as_json() for u in found]})
        return 0
    if not found:
        print(f"no users in {users.path}: add one with `edge users add NAME --role ROLE`")
    for u in found:
        flags = [f for f, on in (("disabled", u.disabled), ("demo", u.demo)) if on]
        print(
            f"{u.name:<20} {u.role:<11} tokens {u.tokens}  changed {u.changed}"
            + (f"  [{', '.join(flags)}]" if flags else "")
        )
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    users = _open(args)
    try:
        if args.revoke:
            revoked = users.revoke_tokens(args.name)
            doc: dict[str, Any] = {"name": args.name, "revoked": revoked}
            text = f"revoked {revoked} token(s) of {args.name}"
        else:
            token = users.create_token(args.name, args.label)
            doc = {"name": args.name, "token": token}
            text = token
    finally:
        users.close()
    if args.json:
        _print_json(doc)
    else:
        print(text)
        if not args.revoke:
            sys.stderr.write("edge: shown once; send it as `Authorization: Bearer <token>`\n")
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    users = _open(args)
    try:
        users.set_disabled(args.name, args.disabled)
    finally:
        users.close()
    print(f"{args.name} {'disabled' if args.disabled else 'enabled'}")
    return 0
