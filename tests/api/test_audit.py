"""GET /api/audit: the audit log, newest first and paged, with its hash chain verified;
technicians and vendors only."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.api.app import AppContext, create_app
from edge.auth import UserStore
from edge.pipeline import Pipeline
from edge.store import Store
from edge.upgrade.audit import record

from .accounts import TestClient, login


@pytest.fixture
def audited(tmp_path: Path, users: UserStore) -> Iterator[tuple[TestClient, Path]]:
    """A service whose data directory holds 30 audit entries."""
    data = tmp_path / "data"
    store = Store(data)
    for i in range(1, 31):
        record(data, "upgrade" if i % 2 else "rollback", actor=f"user:tom{i}",
               message=f"step {i}", model=f"demo@1.{i}", details={"n": i})  # fmt: skip
    pipeline = Pipeline(None, store=store)
    with TestClient(create_app(AppContext(service=pipeline, users=users, store=store))) as client:
        yield client, data
    pipeline.close()
    store.close()


@pytest.mark.parametrize("name", ["tom", "vera"])
def test_technicians_and_vendors_page_through_newest_first(
    audited: tuple[TestClient, Path], name: str
) -> None:
    client, _ = audited
    login(client, name)  # itself the newest entry: logins are audited
    first = client.get("/api/audit", params={"limit": 10}).json()
    assert (first["total"], first["limit"], first["offset"]) == (31, 10, 0)
    assert [e["id"] for e in first["items"]] == list(range(31, 21, -1))
    login_entry, newest = first["items"][0], first["items"][1]
    assert (login_entry["actor"], login_entry["action"]) == (f"user:{name}", "login")
    assert (newest["actor"], newest["action"], newest["message"]) == (
        "user:tom30",
        "rollback",
        "step 30",
    )
    assert newest["details"] == {"n": 30} and len(newest["hash"]) == 64 and newest["at"]
    assert first["verification"] == {"ok": True, "entries": 31, "first_bad": None, "problem": None}
    last = client.get("/api/audit", params={"limit": 10, "offset": 26}).json()
    assert [e["id"] for e in last["items"]] == [5, 4, 3, 2, 1]
    assert client.get("/api/audit", params={"offset": 31}).json()["items"] == []


def test_others_are_refused(audited: tuple[TestClient, Path]) -> None:
    client, _ = audited
    response = client.get("/api/audit")
    assert response.status_code == 401 and response.json()["error"]["code"] == "not_logged_in"
    login(client, "olga")
    response = client.get("/api/audit")
    assert response.status_code == 403
    assert "technician or vendor" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 501}, {"limit": "ten"}, {"offset": -1}, {"offset": "x"}]
)
def test_bad_paging_is_refused_in_the_json_shape(
    audited: tuple[TestClient, Path], params: dict[str, object]
) -> None:
    client, _ = audited
    login(client, "tom")
    response = client.get("/api/audit", params=params)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "bad_request"


def test_an_edited_entry_breaks_the_chain_and_says_where(audited: tuple[TestClient, Path]) -> None:
    client, data = audited
    login(client, "tom")
    conn = sqlite3.connect(data / "edge.db")
    conn.execute("DROP TRIGGER IF EXISTS audit_log_no_update")  # as someone with the disk would
    conn.execute("UPDATE audit_log SET message = 'nothing happened' WHERE id = 12")
    conn.execute("UPDATE audit_log SET details = '{not json' WHERE id = 20")
    conn.commit()
    conn.close()
    page = client.get("/api/audit", params={"limit": 50}).json()
    assert page["verification"]["ok"] is False
    assert page["verification"]["first_bad"] == 12
    assert "entry 12 was changed" in page["verification"]["problem"]
    by_id = {e["id"]: e for e in page["items"]}
    assert by_id[12]["message"] == "nothing happened"
    assert by_id[20]["details"] == "{not json"  # shown as found, not a server error


def test_an_empty_log_verifies_and_a_service_without_data_says_so(
    tmp_path: Path, users: UserStore
) -> None:
    store = Store(tmp_path / "fresh")
    pipeline = Pipeline(None, store=store)
    token = users.create_token("vera")  # a script's token: no login, so the log stays empty
    with TestClient(create_app(AppContext(service=pipeline, users=users, store=store))) as client:
        page = client.get("/api/audit", headers={"Authorization": f"Bearer {token}"}).json()
        assert (page["items"], page["total"], page["verification"]["ok"]) == ([], 0, True)
    with TestClient(create_app(AppContext(service=pipeline, users=users))) as client:
        login(client, "vera")
        response = client.get("/api/audit")
        assert response.status_code == 503
        assert "data directory" in response.json()["error"]["message"]
    pipeline.close()
    store.close()
