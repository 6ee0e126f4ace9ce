"""Writing a report to disk: FILE.html writes the HTML and FILE.json beside it; any other
name the JSON document alone. Each file is written whole or not at all."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from edge.errors import BadInputError


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all (temp file, fsync, rename)."""
    path = path.absolute()
    if not path.parent.is_dir():
        raise BadInputError(f"--report: folder {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_path(path: Path) -> Path:
    """Where the JSON document of report FILE goes (FILE itself unless it is .html)."""
    return path.with_suffix(".json") if path.suffix.lower() in (".html", ".htm") else path


def write_report_files(path: Path, doc: dict[str, Any]) -> list[Path]:
    """The report as `path` asks (see the module docstring); returns the files written."""
    from edge.validation.report_html import render_html

    written = []
    target = json_path(path)
    if target != path:
        html = render_html(doc)  # before any file: a document it cannot render writes none
        write_atomic(target, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        write_atomic(path, html)
        written = [path, target]
    else:
        write_atomic(path, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        written = [path]
    return [p.absolute() for p in written]
