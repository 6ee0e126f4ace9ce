"""read_limited: the whole file, or a clear refusal; a file that grows after its size was
looked at is still held to the limit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge.errors import EdgeError
from edge.ingest import read_limited


def test_reads_whole_files_up_to_the_limit(tmp_path: Path) -> None:
    for size in (1, 1000, 4096):
        path = tmp_path / f"f{size}"
        path.write_bytes(os.urandom(size))
        assert read_limited(path, 4096) == path.read_bytes()


def test_refuses_missing_empty_oversized_and_non_files(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 4097)
    (tmp_path / "empty").write_bytes(b"")
    cases = {
        "big": "too large (4097 bytes, limit 4096)",
        "empty": "empty",
        "missing": "not found",
        ".": "not a regular file",
    }
    for name, message in cases.items():
        with pytest.raises(EdgeError, match=message.replace("(", r"\(").replace(")", r"\)")):
            read_limited(tmp_path / name, 4096)


class Growing(type(Path())):  # type: ignore[misc]
    """A path whose stat() reports the size the file had before it grew."""

    reported = 0

    def stat(self, *args: object, **kwargs: object) -> os.stat_result:
        real = super().stat(*args, **kwargs)
        fields = list(real)
        fields[6] = self.reported  # st_size
        return os.stat_result(fields)


def test_a_file_that_grew_after_stat_is_read_whole_or_refused(tmp_path: Path) -> None:
    path = Growing(tmp_path / "grown")
    path.reported = 100
    path.write_bytes(b"y" * 3000)
    assert read_limited(path, 4096) == b"y" * 3000
    path.write_bytes(b"z" * 5000)
    with pytest.raises(EdgeError, match="over 4096 bytes"):
        read_limited(path, 4096)
    path.write_bytes(b"w" * 4096)
    assert read_limited(path, 4096) == b"w" * 4096
