"""Structured logs: one JSON object per record, with no secrets and no image bytes.

Under systemd ($JOURNAL_STREAM or $INVOCATION_ID set) records go to journald through its
native protocol (one datagram of fields per record, our JSON fields as EDGE_*), falling back
to JSON lines on stderr when the journal socket is absent. Otherwise they go as JSON lines
to a rotating file in the data directory (DATA/logs/edge.log by default, 0640) and, WARNING
and worse, as readable lines on stderr. Every path runs the same sanitising: secret-looking
keys and `key=value` text are masked, bytes and arrays become their size, long text is cut,
because a log is copied off the device (`edge support-bundle`) and read by other people.
"""

from __future__ import annotations

import functools
import json
import logging
import logging.handlers
import os
import re
import socket
import struct
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

JOURNAL_SOCKET = "/run/systemd/journal/socket"
SYSLOG_IDENTIFIER = "edge"
MAX_TEXT_CHARS = 4096  # one string field or message
MAX_EXC_CHARS = 16384  # a traceback keeps its end: the raise site and the error
MAX_DEPTH, MAX_ITEMS = 4, 50  # nested extras kept
MASK = "***"
JournalMode = Literal["auto", "always", "never"]

_SECRET_WORDS = (
    r"passw(?:or)?d|passwd|token|secret|cookie|csrf|authori[sz]ation|api[_-]?key|private[_-]?key"
)
# A field or key whose name contains one of the words: its whole value is masked.
SECRET_NAME = re.compile(rf"(?i)(?:{_SECRET_WORDS})")
# In free text, what follows a secret word when it names a value: the rest of the key, then
# `=` or `:`, then the value (`key=value`, `key: value`, `"key": "value"`, `Bearer x`). It is
# matched where a secret word ends, never scanned for: bounded work on long text.
_VALUE_AFTER = re.compile(
    r"""(?ix)
    [\w.-]{0,40}["']?\s*[:=]\s*
    (?P<value>(?:bearer|basic|token)\s+[^\s,;"'}]{1,4096}|"(?:[^"\\]|\\.){0,4096}"
      |'[^']{0,4096}'|[^\s,;&}"'\\]{1,4096})
    """
)
# Anything redact_text would change contains one of these (lower-cased): most text needs
# only these substring tests, far cheaper than the case-insensitive patterns.
_TRIGGERS = (
    "passw", "token", "secret", "cookie", "csrf", "authori", "api", "private",
    "edge_", "data:image/", "rwqaaeiy", "rwrty0iy",
)  # fmt: skip
_PEM = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S
)
# A minisign secret key line ("Ed" + kdf + "B2" in base64), and the script tokens users.py makes.
_MINISIGN_SECRET = re.compile(r"RW(?:QAAEIy|RTY0Iy)[A-Za-z0-9+/=]{20,}")
_SCRIPT_TOKEN = re.compile(r"\bedge_[A-Za-z0-9_-]{32,}")
_DATA_URI = re.compile(r"data:image/[\w.+-]+;base64,[A-Za-z0-9+/=\s]{16,}")

# LogRecord's own attributes: everything else on a record came in through `extra=`.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
_RESERVED = ("ts", "level", "logger", "msg", "exc")
_PRIORITY = {"CRITICAL": 2, "ERROR": 3, "WARNING": 4, "INFO": 6, "DEBUG": 7}


@functools.lru_cache(maxsize=1024)
def secret_name(name: str) -> bool:
    """Whether a field or key named so holds a secret (its value is masked whole)."""
    return SECRET_NAME.search(name) is not None


def _mask_values(text: str) -> str:
    """Mask the value after each secret word that names one (see _VALUE_AFTER)."""
    out: list[str] = []
    done = 0
    for word in SECRET_NAME.finditer(text):
        if word.start() < done:
            continue  # inside a value already masked
        found = _VALUE_AFTER.match(text, word.end())
        if found is None:
            continue
        start, end = found.span("value")
        value = found["value"]
        quote = value[0] if value[0] in ("'", '"') else ""
        out += [text[done:start], quote, MASK, quote]
        done = end
    return "".join(out) + text[done:] if out else text


def redact_text(text: str, limit: int | None = MAX_TEXT_CHARS) -> str:
    """`text` with secrets masked and inline images removed, cut to `limit` characters."""
    head = text if limit is None else text[: limit + 256]  # bound the work on huge text
    dropped = len(text) - len(head)
    lowered = head.lower()
    if any(word in lowered for word in _TRIGGERS):
        head = _PEM.sub("<private key removed>", head)
        head = _MINISIGN_SECRET.sub("<secret key removed>", head)
        head = _DATA_URI.sub("data:image/removed", head)
        head = _SCRIPT_TOKEN.sub("edge_" + MASK, head)
        head = _mask_values(head)
    if limit is not None and len(head) > limit:
        dropped += len(head) - limit
        head = head[:limit]
    return head + (f"...({dropped} chars cut)" if dropped else "")


def sanitize(value: Any, depth: int = 0) -> Any:
    """A JSON-able copy of a logged value: bytes and arrays as their size, text redacted and
    cut, mappings with secret-named keys masked, nesting and length bounded."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{memoryview(value).nbytes} bytes>"
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is not None and dtype is not None:  # a numpy array (or anything array-like)
        return f"<array {tuple(shape)} {dtype}>"
    if depth >= MAX_DEPTH:
        return f"<{type(value).__name__}>"
    if isinstance(value, Mapping):
        items = list(value.items())
        out = {
            str(k): MASK if secret_name(str(k)) else sanitize(v, depth + 1)
            for k, v in items[:MAX_ITEMS]
        }
        if len(items) > MAX_ITEMS:
            out["..."] = f"{len(items) - MAX_ITEMS} more"
        return out
    if isinstance(value, list | tuple | set | frozenset):
        seq = list(value)
        kept = [sanitize(v, depth + 1) for v in seq[:MAX_ITEMS]]
        return kept + ([f"... {len(seq) - MAX_ITEMS} more"] if len(seq) > MAX_ITEMS else [])
    return redact_text(str(value))


def _message(record: logging.LogRecord) -> str:
    args = record.args
    if isinstance(args, Mapping):
        args = {k: _arg(v) for k, v in args.items()}
    elif isinstance(args, tuple):
        args = tuple(_arg(a) for a in args)
    try:
        text = str(record.msg) % args if args else str(record.msg)
    except (TypeError, ValueError):  # a bad format string still logs what it can
        text = f"{record.msg} {args!r}"
    return redact_text(text)


def _arg(value: Any) -> Any:
    """A %-format argument, with bytes and arrays as their size (never their contents)."""
    if isinstance(value, bytes | bytearray | memoryview) or (
        getattr(value, "shape", None) is not None and getattr(value, "dtype", None) is not None
    ):
        return sanitize(value)
    return value


def timestamp(created: float) -> str:
    """ISO 8601 UTC with milliseconds: 2026-11-27T21:30:00.123Z."""
    return datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The sanitised fields of one record: ts, level, logger, msg, extras, exc."""
    doc: dict[str, Any] = {
        "ts": timestamp(record.created),
        "level": record.levelname,
        "logger": record.name,
        "msg": _message(record),
    }
    for key, value in vars(record).items():
        if key in _RECORD_ATTRS or key.startswith("_"):
            continue
        name = f"extra_{key}" if key in _RESERVED else key
        doc[name] = MASK if secret_name(key) else sanitize(value)
    exc = record.exc_text
    if record.exc_info and record.exc_info[0] is not None:
        exc = logging.Formatter().formatException(record.exc_info)
    if exc:
        exc = redact_text(exc, limit=None)
        doc["exc"] = exc if len(exc) <= MAX_EXC_CHARS else "..." + exc[-MAX_EXC_CHARS:]
    return doc


class JsonFormatter(logging.Formatter):
    """One JSON object per line (no newline inside: JSON escapes them)."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(record_fields(record), ensure_ascii=False, default=str)


class ReadableFormatter(logging.Formatter):
    """`time LEVEL logger: message` for people at a terminal, sanitised like the rest."""

    def format(self, record: logging.LogRecord) -> str:
        doc = record_fields(record)
        line = f"{doc['ts']} {doc['level']} {doc['logger']}: {doc['msg']}"
        return line + ("\n" + doc["exc"] if "exc" in doc else "")


def journal_field_name(name: str) -> str:
    """journald's rules: upper-case letters, digits and _, not leading _, at most 64."""
    cleaned = re.sub(r"[^A-Z0-9_]", "_", name.upper()).lstrip("_")
    return ("EDGE_" + cleaned)[:64]


def _journal_field(name: str, value: str) -> bytes:
    data = value.encode("utf-8", "replace")
    if b"\n" in data:  # the binary form: name, newline, 64-bit LE length, value, newline
        return name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
    return name.encode() + b"=" + data + b"\n"


def journal_datagram(record: logging.LogRecord) -> bytes:
    """One native-protocol datagram: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, CODE_*, EDGE_*."""
    doc = record_fields(record)
    message = doc["msg"] + ("\n" + doc["exc"] if "exc" in doc else "")
    parts = [
        _journal_field("MESSAGE", message),
        _journal_field("PRIORITY", str(_PRIORITY.get(record.levelname, 6))),
        _journal_field("SYSLOG_IDENTIFIER", SYSLOG_IDENTIFIER),
        _journal_field("CODE_FILE", record.pathname),
        _journal_field("CODE_LINE", str(record.lineno)),
        _journal_field("CODE_FUNC", str(record.funcName)),
    ]
    for key, value in doc.items():
        if key != "msg":
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            parts.append(_journal_field(journal_field_name(key), text))
    return b"".join(parts)


class JournalHandler(logging.Handler):
    """Sends each record to journald's socket; a record the journal does not take (busy,
    too big, socket gone) is written as a JSON line on stderr instead, never dropped."""

    def __init__(self, socket_path: str = JOURNAL_SOCKET, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.socket_path = socket_path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.fallback = JsonFormatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            datagram = journal_datagram(record)
            try:
                self.sock.sendto(datagram, self.socket_path)
            except OSError:
                sys.stderr.write(self.fallback.format(record) + "\n")
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self.sock.close()
        super().close()


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (a test's capture, a redirected stream),
    never to a stream that was replaced and closed since."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        logging.Handler.__init__(self, level)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """RotatingFileHandler whose files are created 0640: logs are for the service's group."""

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)  # noqa: SIM115


def under_systemd(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return bool(env.get("JOURNAL_STREAM") or env.get("INVOCATION_ID"))


_OURS = "_edge_logs"  # marks the handlers setup_logging installed, so a second call replaces them


def remove_handlers() -> None:
    """Take off and close the handlers setup_logging installed (a second setup, tests)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(handler)
        handler.close()


def setup_logging(
    *,
    level: str = "INFO",
    log_file: Path | None = None,
    max_bytes: int = 10 << 20,
    backups: int = 5,
    journal: JournalMode = "auto",
    verbose: bool = False,
    env: Mapping[str, str] | None = None,
    journal_socket: str = JOURNAL_SOCKET,
) -> list[logging.Handler]:
    """Install the handlers on the root logger (replacing any this function installed) and
    return them. `log_file` None: no file (the caller has no data directory to write to)."""
    remove_handlers()
    root = logging.getLogger()
    file_level = logging.getLevelName(level.upper())
    if not isinstance(file_level, int):
        raise ValueError(f"logging level: expected DEBUG, INFO, WARNING or ERROR, got {level!r}")
    stderr_level = logging.INFO if verbose else logging.WARNING
    handlers: list[logging.Handler] = []
    use_journal = journal == "always" or (journal == "auto" and under_systemd(env))
    if use_journal:
        if os.path.exists(journal_socket):
            handlers.append(JournalHandler(journal_socket, file_level))
        else:
            fallback = StderrHandler(file_level)
            fallback.setFormatter(JsonFormatter())
            handlers.append(fallback)
    else:
        console = StderrHandler(stderr_level)
        console.setFormatter(ReadableFormatter())
        handlers.append(console)
        if log_file is not None:
            try:
                handlers.append(_file_handler(log_file, max_bytes, backups, file_level))
            except OSError as exc:
                console.handle(_note(f"logging to {log_file} is off: {exc}"))
    for handler in handlers:
        setattr(handler, _OURS, True)
        root.addHandler(handler)
    root.setLevel(min(h.level for h in handlers))
    return handlers


def _file_handler(path: Path, max_bytes: int, backups: int, level: int) -> logging.Handler:
    path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    handler = PrivateRotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
    )
    handler.setLevel(level)
    handler.setFormatter(JsonFormatter())
    return handler


def _note(text: str) -> logging.LogRecord:
    return logging.LogRecord(__name__, logging.WARNING, __file__, 0, text, None, None)
