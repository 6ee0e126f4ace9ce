"""Structured logs: JSON lines with their fields, secrets and image bytes kept out, journald's
native protocol against a real datagram socket, and a file that really rotates."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import stat
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.logs import (
    MAX_TEXT_CHARS,
    JournalHandler,
    journal_field_name,
    redact_text,
    remove_handlers,
    setup_logging,
)
from edge.upgrade.minisign import generate_key

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SECRET = "hunter2-s3cr3t"


@pytest.fixture(autouse=True)
def _clean_root() -> Iterator[None]:
    level = logging.getLogger().level
    yield
    remove_handlers()
    logging.getLogger().setLevel(level)


def file_logger(tmp_path: Path, **kwargs: Any) -> tuple[logging.Logger, Path]:
    path = tmp_path / "logs" / "edge.log"
    setup_logging(log_file=path, level="DEBUG", **kwargs)
    return logging.getLogger("edge.test"), path


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_one_json_object_per_line_with_extras_and_exception(tmp_path: Path) -> None:
    log, path = file_logger(tmp_path)
    log.info("frame %s screened", "f-1", extra={"frame": "f-1", "source": "serial", "n": 3})
    try:
        raise RuntimeError("detector crashed\nsecond line")
    except RuntimeError:
        log.exception("no result", extra={"model": "demo@1.0.0"})
    first, second = lines(path)
    assert TS.match(first["ts"]) and first["level"] == "INFO" and first["logger"] == "edge.test"
    assert first["msg"] == "frame f-1 screened"
    assert (first["frame"], first["source"], first["n"]) == ("f-1", "serial", 3)
    assert "exc" not in first
    assert second["level"] == "ERROR" and second["model"] == "demo@1.0.0"
    assert "RuntimeError: detector crashed\nsecond line" in second["exc"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def _minisign_secret() -> str:
    return generate_key().to_text()


@pytest.mark.parametrize(
    "text",
    [
        f"login failed password={SECRET}",
        f"user tom passwd: {SECRET}",
        f'body {{"password": "{SECRET}", "name": "tom"}}',
        f"headers {{'Authorization': 'Bearer {SECRET}'}}",
        f"Authorization: Bearer {SECRET}",
        f"Cookie: edge_session=x; edge_csrf={SECRET}",
        f"csrf_token={SECRET}&next=/",
        f"api_key={SECRET}",
        f"X-Api-Key: {SECRET}",
        f"set token {SECRET}",  # no separator: kept, see below
        "script token edge_" + "A" * 43,
        f"-----BEGIN PRIVATE KEY-----\n{SECRET}\n-----END PRIVATE KEY-----",
        "secret key follows\n" + "{minisign}",
        "report <img src='data:image/jpeg;base64," + "QUJD" * 100 + "'>",
    ],
)
def test_secrets_and_inline_images_are_masked_in_messages(tmp_path: Path, text: str) -> None:
    if "{minisign}" in text:
        text = text.replace("{minisign}", _minisign_secret())
        secret_line = text.splitlines()[-1]
    else:
        secret_line = SECRET
    log, path = file_logger(tmp_path)
    log.warning(text)
    (record,) = lines(path)
    if text.startswith("set token "):  # free prose is not guessed at: only key=value forms
        assert record["msg"] == text
        return
    assert secret_line not in record["msg"]
    assert "A" * 43 not in record["msg"] and "QUJDQUJD" not in record["msg"]


def test_innocent_text_is_left_alone() -> None:
    text = "model demo@1.0.0 loaded (sha256 ab12...), 3 frames, lane=2, port: 8080"
    assert redact_text(text) == text


def test_extras_carry_sizes_not_bytes_and_mask_secret_keys(tmp_path: Path) -> None:
    log, path = file_logger(tmp_path)
    pixels = np.zeros((480, 640), np.uint16)
    log.info(
        "frame of %s from %s",
        b"\x89PNG" + bytes(5000),
        pixels,
        extra={
            "image": bytes(1000),
            "buffer": bytearray(7),
            "view": memoryview(bytes(12)),
            "pixels": pixels,
            "password": SECRET,
            "headers": {"Authorization": f"Bearer {SECRET}", "accept": "json"},
            "note": "x" * (MAX_TEXT_CHARS + 500),
            "nested": [{"csrf": SECRET}],
            "level": "a clash with a reserved name",
        },
    )
    (record,) = lines(path)
    text = path.read_text()
    assert SECRET not in text and "PNG" not in text
    assert record["msg"] == "frame of <5004 bytes> from <array (480, 640) uint16>"
    assert (record["image"], record["buffer"], record["view"]) == (
        "<1000 bytes>",
        "<7 bytes>",
        "<12 bytes>",
    )
    assert record["pixels"] == "<array (480, 640) uint16>"
    assert record["password"] == "***" and record["headers"]["Authorization"] == "***"
    assert record["headers"]["accept"] == "json" and record["nested"] == [{"csrf": "***"}]
    assert len(record["note"]) < MAX_TEXT_CHARS + 40 and record["note"].endswith("chars cut)")
    assert record["extra_level"] == "a clash with a reserved name" and record["level"] == "INFO"


def test_exception_text_is_redacted(tmp_path: Path) -> None:
    log, path = file_logger(tmp_path)
    try:
        raise ValueError(f"bad login token={SECRET}")
    except ValueError:
        log.exception("failed")
    (record,) = lines(path)
    assert SECRET not in record["exc"] and "token=***" in record["exc"]


def test_the_file_rotates_at_its_size_limit(tmp_path: Path) -> None:
    log, path = file_logger(tmp_path, max_bytes=2000, backups=2)
    for i in range(120):
        log.info("record %03d", i, extra={"pad": "p" * 40})
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == ["edge.log", "edge.log.1", "edge.log.2"]
    for p in path.parent.iterdir():
        assert p.stat().st_size <= 2000
        assert stat.S_IMODE(p.stat().st_mode) == 0o640
    newest = lines(path)[-1]["msg"]
    oldest_kept = lines(path.parent / "edge.log.2")[0]["msg"]
    assert newest == "record 119" and oldest_kept > "record 000"  # the oldest were deleted


def test_warnings_also_reach_stderr_readably(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, path = file_logger(tmp_path)
    log.info("quiet detail")
    log.warning("disk nearly full password=%s", SECRET)
    err = capsys.readouterr().err
    assert "quiet detail" not in err
    assert re.search(r"WARNING edge\.test: disk nearly full password=\*\*\*$", err.strip())
    assert len(lines(path)) == 2


# ----------------------------------------------------------------------------- journald


def parse_datagram(data: bytes) -> dict[str, str]:
    """journald's native protocol: KEY=value lines, or KEY\\n<u64 LE length><value>\\n."""
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        newline = data.index(b"\n", pos)
        line = data[pos:newline]
        if b"=" in line:
            key, value = line.split(b"=", 1)
            pos = newline + 1
        else:
            key = line
            (length,) = struct.unpack("<Q", data[newline + 1 : newline + 9])
            value = data[newline + 9 : newline + 9 + length]
            assert data[newline + 9 + length : newline + 10 + length] == b"\n"
            pos = newline + 10 + length
        assert re.fullmatch(rb"[A-Z0-9][A-Z0-9_]{0,63}", key), key
        fields[key.decode()] = value.decode()
    return fields


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "journal.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5.0)
    with sock:
        yield sock, path


@pytest.mark.parametrize("env", [{"JOURNAL_STREAM": "8:12345"}, {"INVOCATION_ID": "ab" * 16}])
def test_under_systemd_records_go_to_the_journal_socket(
    journal: tuple[socket.socket, str],
    env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sock, path = journal
    handlers = setup_logging(
        env=env, journal_socket=path, log_file=tmp_path / "no" / "edge.log", level="INFO"
    )
    assert [type(h) for h in handlers] == [JournalHandler]
    log = logging.getLogger("edge.service")
    log.warning("frame %s not logged", "f-7", extra={"frame": "f-7", "raw": bytes(300)})
    try:
        raise OSError("disk full")
    except OSError:
        log.error("store: write failed password=%s", SECRET, exc_info=True)
    warning = parse_datagram(sock.recv(65536))
    error = parse_datagram(sock.recv(65536))
    assert warning["MESSAGE"] == "frame f-7 not logged" and warning["PRIORITY"] == "4"
    assert warning["SYSLOG_IDENTIFIER"] == "edge" and warning["EDGE_LOGGER"] == "edge.service"
    assert warning["EDGE_FRAME"] == "f-7" and warning["EDGE_RAW"] == "<300 bytes>"
    assert TS.match(warning["EDGE_TS"]) and warning["CODE_FUNC"].startswith("test_under")
    assert error["PRIORITY"] == "3" and SECRET not in error["MESSAGE"]
    assert error["MESSAGE"].startswith("store: write failed password=***\nTraceback")
    assert "OSError: disk full" in error["EDGE_EXC"]
    assert not (tmp_path / "no").exists()  # no file under systemd
    assert capsys.readouterr().err == ""  # nothing twice (stderr goes to the journal too)


def test_without_the_journal_socket_json_lines_go_to_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging(env={"INVOCATION_ID": "x"}, journal_socket=str(tmp_path / "absent.sock"))
    logging.getLogger("edge.x").info("started", extra={"port": 8080})
    (line,) = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert record["msg"] == "started" and record["port"] == 8080 and record["level"] == "INFO"


def test_a_record_the_journal_refuses_is_written_to_stderr(
    journal: tuple[socket.socket, str], capsys: pytest.CaptureFixture[str]
) -> None:
    sock, path = journal
    setup_logging(journal="always", journal_socket=path)
    log = logging.getLogger("edge.x")
    log.info("one")
    assert parse_datagram(sock.recv(65536))["MESSAGE"] == "one"
    os.unlink(path)  # journald restarted / gone: the send fails
    log.info("two", extra={"frame": "f-2"})
    record = json.loads(capsys.readouterr().err.strip())
    assert (record["msg"], record["frame"]) == ("two", "f-2")


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("frame", "EDGE_FRAME"),
        ("bag-id.x", "EDGE_BAG_ID_X"),
        ("_private", "EDGE_PRIVATE"),
        ("x" * 100, "EDGE_" + "X" * 59),
    ],
)
def test_journal_field_names_follow_journald_rules(name: str, field: str) -> None:
    assert journal_field_name(name) == field


# ----------------------------------------------------------------------------- the CLI


def edge(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_the_cli_logs_to_the_data_directory_unless_read_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "INVOCATION_ID")}
    proc = edge("simulate", "dataset", "--out", str(tmp_path / "ds"), "--count", "1",
                "--data", str(data), env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    log = data / "logs" / "edge.log"
    assert log.is_file() and stat.S_IMODE(log.stat().st_mode) == 0o640
    log.unlink()
    proc = edge("doctor", "--json", "--data", str(data), env=env)
    assert proc.returncode in (0, 1), proc.stderr
    assert not log.exists()  # read-only verbs write nothing, their log included
    config = tmp_path / "edge.toml"
    config.write_text(f'[logging]\nfile = "{tmp_path / "elsewhere.log"}"\nlevel = "DEBUG"\n')
    proc = edge("simulate", "dataset", "--out", str(tmp_path / "ds2"), "--count", "1",
                "--data", str(data), "--config", str(config), env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "elsewhere.log").is_file() and not log.exists()
