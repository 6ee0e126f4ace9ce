"""The configuration as the support bundle carries it: the effective settings as TOML, with
every secret-named value masked and secret-looking text redacted.

A valid file is written back from the validated model (defaults included, comments not, so
nothing typed in a comment leaves the device); a file that does not validate is carried as
its text, redacted line by line, beside the error, since that is what the vendor must see.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge.config import MAX_CONFIG_BYTES, EdgeConfig, parse_config
from edge.errors import EdgeError
from edge.logs import MASK, redact_text, secret_name

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def redact_config(value: Any, key: str = "") -> Any:
    """A copy with values under secret-named keys masked and strings redacted."""
    if key and secret_name(key):
        return MASK
    if isinstance(value, Mapping):
        return {str(k): redact_config(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_config(v) for v in value]
    if isinstance(value, str):
        return redact_text(value, limit=None)
    return value


def _key(name: str) -> str:
    return name if _BARE_KEY.match(name) else json.dumps(name, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes are TOML's
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        pairs = ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None)
        return "{ " + pairs + " }" if pairs else "{}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def to_toml(doc: Mapping[str, Any], prefix: str = "") -> str:
    """TOML text of a JSON-like document; None values are left out (TOML has no null)."""
    lines: list[str] = []
    tables: list[tuple[str, Any]] = []
    for key, value in doc.items():
        if value is None:
            continue
        if isinstance(value, Mapping) or _is_table_array(value):
            tables.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in tables:
        path = f"{prefix}{_key(key)}"
        if isinstance(value, Mapping):
            body = to_toml(value, f"{path}.")
            lines += ["", f"[{path}]", body] if body else ["", f"[{path}]"]
        else:
            for item in value:
                lines += ["", f"[[{path}]]", to_toml(item, f"{path}.")]
    return "\n".join(lines).strip("\n")


def config_member(path: Path | None) -> tuple[bytes, str | None]:
    """(config.toml's bytes, the file's validation error or None)."""
    if path is None:
        header = "# no configuration file: the defaults\n"
        return (header + to_toml(EdgeConfig().model_dump(mode="json")) + "\n").encode(), None
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            return b"", f"{path}: {size} bytes; a configuration is at most {MAX_CONFIG_BYTES}"
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return b"", f"{path}: cannot read the configuration: {exc}"
    try:
        config = parse_config(text, str(path))
    except EdgeError as exc:
        header = f"# {path} as written (it does not validate; secrets masked)\n"
        return (header + _redact_lines(text)).encode(), exc.message
    header = f"# the effective configuration from {path}: defaults included, secrets masked\n"
    doc = redact_config(config.model_dump(mode="json"))
    return (header + to_toml(doc) + "\n").encode(), None


def _redact_lines(text: str) -> str:
    """Raw TOML with `secret_name = ...` values masked, line by line (it may not parse)."""
    return "".join(redact_text(line, limit=None) for line in text.splitlines(keepends=True))
