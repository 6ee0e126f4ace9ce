"""The user store: a real users.db, sessions that expire, tokens, demo accounts."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from edge.auth import (
    LoginFailedError,
    ScryptParams,
    SessionPolicy,
    UnknownUserError,
    UserExistsError,
    UserStore,
)
from edge.auth.demo import DEMO_PASSWORD, open_users
from edge.auth.errors import BadCredentialError

FAST = ScryptParams(log2_n=8, r=8, p=1)


class Clock:
    now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def users(tmp_path: Path, clock: Clock) -> UserStore:
    store = UserStore(
        tmp_path, kdf=FAST, sessions=SessionPolicy(idle_s=600, max_s=3600), clock=clock
    )
    store.add_user("olga", "operator", "correct horse")
    return store


def test_the_file_is_private_and_holds_no_secrets(users: UserStore, tmp_path: Path) -> None:
    session = users.create_session(users.authenticate("olga", "correct horse"))
    token = users.create_token("olga")
    users.close()
    path = tmp_path / "users.db"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_bytes()
    for secret in (
        b"correct horse",
        session.token.encode(),
        session.csrf_token.encode(),
        token.encode(),
    ):
        assert secret not in raw
    with sqlite3.connect(path) as db:
        [(hashed,)] = db.execute("SELECT password FROM users").fetchall()
    assert hashed.startswith("$scrypt$ln=8,r=8,p=1$")


def test_a_loose_file_is_made_private(tmp_path: Path) -> None:
    (tmp_path / "users.db").touch()
    os.chmod(tmp_path / "users.db", 0o644)
    UserStore(tmp_path, kdf=FAST).close()
    assert stat.S_IMODE((tmp_path / "users.db").stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("name", "role", "password", "error"),
    [
        ("olga", "operator", "another pass", UserExistsError),
        ("Olga", "operator", "another pass", BadCredentialError),
        ("a" * 33, "operator", "another pass", BadCredentialError),
        ("../x", "operator", "another pass", BadCredentialError),
        ("ivan", "admin", "another pass", BadCredentialError),
        ("ivan", "operator", "short", BadCredentialError),
    ],
)
def test_bad_users_are_refused(
    users: UserStore, name: str, role: str, password: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        users.add_user(name, role, password)


def test_sessions_end_when_idle_at_their_limit_or_on_password_change(
    users: UserStore, clock: Clock
) -> None:
    user = users.authenticate("olga", "correct horse")
    session = users.create_session(user)
    assert users.session(session.token) == session.principal
    for _ in range(5):  # in use every 500 s: never idle, until the 3600 s limit
        clock.now += 500
        assert users.session(session.token) is not None
    clock.now += 1200
    assert users.session(session.token) is None  # past max_s
    idle = users.create_session(user)
    clock.now += 601
    assert users.session(idle.token) is None  # past idle_s
    changed = users.create_session(user)
    users.set_password("olga", "new horse staple")
    assert users.session(changed.token) is None
    with pytest.raises(LoginFailedError):
        users.authenticate("olga", "correct horse")
    assert users.authenticate("olga", "new horse staple").name == "olga"


def test_sessions_survive_a_restart(users: UserStore, tmp_path: Path, clock: Clock) -> None:
    session = users.create_session(users.authenticate("olga", "correct horse"))
    users.close()
    again = UserStore(
        tmp_path, kdf=FAST, sessions=SessionPolicy(idle_s=600, max_s=3600), clock=clock
    )
    assert again.session(session.token) == session.principal


def test_tokens(users: UserStore) -> None:
    token = users.create_token("olga", "shift report script")
    assert token.startswith("edge_") and len(token) > 40
    principal = users.token(token)
    assert principal is not None and (principal.name, principal.via) == ("olga", "token")
    assert users.token(token[:-1]) is None and users.token("x" * 500) is None
    assert users.users()[0].tokens == 1
    assert users.revoke_tokens("olga") == 1 and users.token(token) is None
    with pytest.raises(UnknownUserError):
        users.create_token("nobody")


def test_stronger_defaults_rehash_at_the_next_login(tmp_path: Path) -> None:
    weak = UserStore(tmp_path, kdf=ScryptParams(log2_n=6, r=8, p=1))
    weak.add_user("olga", "operator", "correct horse")
    weak.close()
    strong = UserStore(tmp_path, kdf=FAST)
    strong.authenticate("olga", "correct horse")
    strong.close()
    with sqlite3.connect(tmp_path / "users.db") as db:
        [(hashed,)] = db.execute("SELECT password FROM users").fetchall()
    assert hashed.startswith("$scrypt$ln=8,")


def test_demo_accounts_work_only_while_the_demo_runs(tmp_path: Path) -> None:
    demo = open_users(tmp_path, demo=True, kdf=FAST)
    assert sorted((u.name, u.role, u.demo) for u in demo.users()) == [
        ("operator", "operator", True),
        ("technician", "technician", True),
        ("vendor", "vendor", True),
    ]
    session = demo.create_session(demo.authenticate("operator", DEMO_PASSWORD))
    demo.close()
    real = open_users(tmp_path, demo=False, kdf=FAST)
    assert real.session(session.token) is None
    with pytest.raises(LoginFailedError, match="demo account"):
        real.authenticate("operator", DEMO_PASSWORD)
    real.set_password("operator", "a real password")  # now a real account
    assert real.authenticate("operator", "a real password").demo is False
    real.close()
    # The demo does not add its users to a directory that has users already.
    assert len(open_users(tmp_path, demo=True, kdf=FAST).users()) == 3


def test_scripts_run_prints_the_demo_login() -> None:
    run = (Path(__file__).resolve().parents[2] / "scripts" / "run").read_text()
    assert f"password {DEMO_PASSWORD}" in run
