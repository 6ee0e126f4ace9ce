"""The upgrade bundle's signed document, `bundle.json` (CONTRACT.md section 3), and the
vendor side: `build_bundle` packs a model directory (and optional tests) and signs it.

    bundle.json          format, kind, name, version, release, compatible, created, files
    bundle.json.minisig  minisign signature of bundle.json's exact bytes
    model/...            a model directory (manifest.json + model.onnx + ...)
    tests/...            optional: a regression suite (suite.json) the bundle brings
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edge.detector.manifest import MANIFEST_NAME, MODEL_NAME, load_model_dir
from edge.errors import BadInputError
from edge.upgrade import minisign
from edge.upgrade.errors import UpgradeRefusedError

BUNDLE_JSON = "bundle.json"
SIGNATURE = "bundle.json.minisig"
MODEL_PREFIX = "model/"
TESTS_PREFIX = "tests/"
BUNDLE_SUFFIX = ".edgebundle"
MAX_BUNDLE_JSON_BYTES = 1 << 20
MAX_FILES = 10_000
SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    sha256: str = Field(pattern=_HEX64.pattern, description="SHA-256, lower-case hex")
    size: int = Field(ge=0, description="bytes")


class BundleDoc(BaseModel):
    """bundle.json. Unknown fields are ignored (a later format may add some)."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    format: Literal[1]
    kind: Literal["model"]
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")
    version: str = Field(max_length=100, pattern=SEMVER.pattern)
    release: int = Field(ge=0, le=2**53, description="release counter, strictly increasing")
    compatible: list[str] = Field(min_length=1, max_length=100)
    created: str = Field(min_length=1, max_length=64)
    files: dict[str, FileEntry] = Field(max_length=MAX_FILES)

    @field_validator("files")
    @classmethod
    def _paths(cls, files: dict[str, FileEntry]) -> dict[str, FileEntry]:
        for path in files:
            check_member_path(path)
            if not path.startswith((MODEL_PREFIX, TESTS_PREFIX)):
                raise ValueError(f"{path!r}: every file lies under model/ or tests/")
        for required in (MODEL_PREFIX + MANIFEST_NAME, MODEL_PREFIX + MODEL_NAME):
            if required not in files:
                raise ValueError(f"'{required}' is missing")
        return files

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files.values())


def check_member_path(path: str) -> str:
    """A relative posix path with no '..', no absolute start, no empty part; else ValueError."""
    pure = PurePosixPath(path)
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or "\x00" in path
        or ".." in pure.parts
        or any(part in ("", ".") for part in path.split("/"))
    ):
        raise ValueError(f"{path!r} is not a plain relative path (absolute, '..' or empty part)")
    return path


def parse_bundle_json(data: bytes) -> BundleDoc:
    """Validate bundle.json bytes; UpgradeRefusedError names the field."""
    if len(data) > MAX_BUNDLE_JSON_BYTES:
        raise UpgradeRefusedError(
            f"bundle refused: bundle.json is larger than {MAX_BUNDLE_JSON_BYTES >> 20} MiB"
        )
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise UpgradeRefusedError(
            f"bundle refused: bundle.json is not valid JSON ({exc})"
        ) from None
    if not isinstance(doc, dict):
        raise UpgradeRefusedError("bundle refused: bundle.json is not a JSON object")
    try:
        return BundleDoc.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "bundle.json"
        message = first["msg"].removeprefix("Value error, ")
        raise UpgradeRefusedError(
            f"bundle refused: bundle.json field '{field}': {message}"
        ) from None


# ----------------------------------------------------------------------------- building


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _tree(root: Path, prefix: str) -> dict[str, Path]:
    """Regular files under root as {prefix + relative posix path: path}; links refused."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            raise BadInputError(f"{path}: a link; a bundle carries regular files only")
        if path.is_file():
            found[prefix + path.relative_to(root).as_posix()] = path
        elif not path.is_dir():
            raise BadInputError(f"{path}: not a regular file; a bundle carries regular files only")
    return found


def build_bundle(
    model_dir: Path,
    secret: minisign.SecretKey,
    *,
    version: str,
    release: int,
    compatible: list[str],
    tests_dir: Path | None = None,
    out: Path | None = None,
    created: datetime | None = None,
) -> tuple[Path, BundleDoc]:
    """Pack and sign a bundle; returns its path (default `<name>-<version>.edgebundle`)."""
    spec = load_model_dir(model_dir)  # a vendor learns of a bad manifest here, not on site
    manifest = spec.manifest
    if manifest.version != version:
        raise BadInputError(
            f"--version {version}: the model's manifest.json says version {manifest.version}"
        )
    members = _tree(Path(model_dir), MODEL_PREFIX)
    if tests_dir is not None:
        if not (tests_dir / "suite.json").is_file():
            raise BadInputError(f"--tests {tests_dir}: not a regression suite (no suite.json)")
        members.update(_tree(tests_dir, TESTS_PREFIX))
    doc = {
        "format": 1,
        "kind": "model",
        "name": manifest.name,
        "version": version,
        "release": release,
        "compatible": compatible,
        "created": (created or datetime.now(UTC)).isoformat(timespec="seconds"),
        "files": {
            name: {"sha256": _sha256_file(path), "size": path.stat().st_size}
            for name, path in members.items()
        },
    }
    data = (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode("utf-8")
    try:
        parsed = parse_bundle_json(data)
    except UpgradeRefusedError as exc:
        raise BadInputError(exc.message.replace("bundle refused: ", "")) from None
    comment = f"{manifest.name} {version} release {release}"
    signature = minisign.sign(
        data, secret, minisign.default_trusted_comment(BUNDLE_JSON), comment
    ).encode("utf-8")
    out = out or Path(f"{manifest.name}-{version}{BUNDLE_SUFFIX}")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent.absolute())
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            _add_bytes(tar, BUNDLE_JSON, data)
            _add_bytes(tar, SIGNATURE, signature)
            for name, path in members.items():
                info = tarfile.TarInfo(name)
                info.size = path.stat().st_size
                info.mode = 0o644
                info.mtime = int(path.stat().st_mtime)
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out, parsed


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = int(datetime.now(UTC).timestamp())
    tar.addfile(info, io.BytesIO(data))


def describe(doc: BundleDoc) -> dict[str, Any]:
    """What `edge bundle verify` and the audit log say about a bundle."""
    return {
        "name": doc.name,
        "version": doc.version,
        "release": doc.release,
        "compatible": doc.compatible,
        "created": doc.created,
        "files": len(doc.files),
        "bytes": doc.total_bytes,
    }
