"""`edge users ...` as a technician runs it: real subprocesses, a real users.db."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge.auth import UserStore


def edge(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", "users", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_add_list_passwd_token_disable(tmp_path: Path) -> None:
    data = ["--data", str(tmp_path)]
    added = edge("add", "olga", "--role", "operator", "--json", *data, stdin="correct horse\n")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["role"] == "operator"
    assert "correct horse" not in added.stdout + added.stderr

    again = edge("add", "olga", "--role", "vendor", *data, stdin="another one\n")
    assert again.returncode == 2 and "exists already" in again.stderr
    short = edge("add", "tom", "--role", "technician", *data, stdin="short\n")
    assert short.returncode == 2 and "8 to 1024 characters" in short.stderr
    bad_role = edge("add", "tom", "--role", "admin", *data, stdin="long enough\n")
    assert bad_role.returncode == 2

    token = edge("token", "olga", "--label", "script", "--json", *data)
    assert token.returncode == 0, token.stderr
    secret = json.loads(token.stdout)["token"]

    listed = json.loads(edge("list", "--json", *data).stdout)["users"]
    assert [(u["name"], u["role"], u["tokens"], u["disabled"]) for u in listed] == [
        ("olga", "operator", 1, False)
    ]
    assert edge("passwd", "olga", *data, stdin="staple battery\n").returncode == 0
    assert edge("passwd", "nobody", *data, stdin="staple battery\n").returncode == 2
    assert edge("disable", "olga", *data).returncode == 0
    assert "[disabled]" in edge("list", *data).stdout

    users = UserStore(tmp_path)
    try:
        assert users.token(secret) is None  # disabled
        users.set_disabled("olga", False)
        assert users.token(secret) is not None
        assert users.authenticate("olga", "staple battery").name == "olga"
    finally:
        users.close()
    revoked = edge("token", "olga", "--revoke", "--json", *data)
    assert json.loads(revoked.stdout) == {"name": "olga", "revoked": 1}
