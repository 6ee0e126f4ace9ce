"""The audit log: hash-chained, and any edit or deletion found by `edge audit verify`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edge.cli import main
from edge.upgrade import audit


def _log(data: Path, count: int = 4) -> None:
    for i in range(count):
        audit.record(data, "upgrade-started", actor="cli:tom", message=f"step {i}",
                     bundle_sha256="ab" * 32, key_id="1E30AE8A99EBA111")  # fmt: skip


def _sql(data: Path, *statements: str) -> None:
    conn = sqlite3.connect(data / "edge.db")
    with conn:
        conn.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        conn.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
        for statement in statements:
            conn.execute(statement)
    conn.close()


def test_entries_chain_and_verify(tmp_path: Path) -> None:
    _log(tmp_path)
    found = audit.entries(tmp_path)
    assert [e.id for e in found] == [1, 2, 3, 4]
    assert found[0].actor == "cli:tom" and found[0].key_id == "1E30AE8A99EBA111"
    assert audit.verify(tmp_path).ok


def test_the_table_refuses_edits_by_itself(tmp_path: Path) -> None:
    _log(tmp_path, 1)
    conn = sqlite3.connect(tmp_path / "edge.db")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE audit_log SET actor = 'eve'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit_log")
    conn.close()


@pytest.mark.parametrize(
    ("statement", "first_bad", "problem"),
    [
        (
            "UPDATE audit_log SET message = 'nothing happened' WHERE id = 2",
            2,
            "entry 2 was changed",
        ),
        ("UPDATE audit_log SET details = '{\"x\":1}' WHERE id = 3", 3, "entry 3 was changed"),
        ("DELETE FROM audit_log WHERE id = 2", 2, "entry 2 is missing"),
        ("DELETE FROM audit_log WHERE id = 4", 4, "entries 4 to 4 are missing"),
        ("DELETE FROM audit_log WHERE id >= 3", 3, "entries 3 to 4 are missing"),
    ],
)
def test_an_edit_or_deletion_is_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], statement: str, first_bad: int,
    problem: str,
) -> None:  # fmt: skip
    _log(tmp_path)
    _sql(tmp_path, statement)
    result = audit.verify(tmp_path)
    assert not result.ok and result.first_bad == first_bad and problem in (result.problem or "")
    assert main(["audit", "verify", "--data", str(tmp_path)]) == 1
    assert f"first bad entry: {first_bad}" in capsys.readouterr().out


def test_a_rewritten_chain_is_found_by_the_head(tmp_path: Path) -> None:
    _log(tmp_path)
    rows = sqlite3.connect(tmp_path / "edge.db").execute("SELECT * FROM audit_log").fetchall()
    assert len(rows) == 4
    # Recompute the whole chain after an edit: only the head file still tells.
    conn = sqlite3.connect(tmp_path / "edge.db")
    conn.row_factory = sqlite3.Row
    _sql(tmp_path, "UPDATE audit_log SET actor = 'eve' WHERE id = 1")
    prev = audit.GENESIS
    for row in conn.execute("SELECT * FROM audit_log ORDER BY id").fetchall():
        digest = audit.entry_hash(dict(row), prev)
        _sql(tmp_path, f"UPDATE audit_log SET prev_hash = '{prev}', hash = '{digest}' "
                       f"WHERE id = {row['id']}")  # fmt: skip
        prev = digest
    conn.close()
    result = audit.verify(tmp_path)
    assert not result.ok and "differs from the recorded head" in (result.problem or "")


def test_cli_verify_passes_on_an_intact_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _log(tmp_path, 2)
    assert main(["audit", "verify", "--data", str(tmp_path)]) == 0
    assert "2 entries, hash chain verified" in capsys.readouterr().out
