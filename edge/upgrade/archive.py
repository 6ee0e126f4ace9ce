"""Reading a bundle archive defensively: copied in with a size cap, read with `tarfile` but
never extracted by it. Only regular files named in the signed `files` map are written, by
this module, each checked against its signed size and SHA-256 as it is copied out.

Pass 1 (`read_signed`) reads bundle.json and its signature and the member headers, refusing
unsafe names and non-regular members, then verifies the signature and checks the member
list against `files`. Pass 2 (`extract_listed`) writes the listed members.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import uuid
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from edge.errors import BadInputError
from edge.upgrade import minisign
from edge.upgrade.bundle import (
    BUNDLE_JSON,
    MAX_BUNDLE_JSON_BYTES,
    MAX_FILES,
    SIGNATURE,
    BundleDoc,
    check_member_path,
    parse_bundle_json,
)
from edge.upgrade.errors import UpgradeRefusedError

MAX_MEMBERS = 4 * MAX_FILES
CHUNK = 1 << 20
_KINDS = {
    tarfile.SYMTYPE: "a symbolic link",
    tarfile.LNKTYPE: "a hard link",
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a FIFO",
}


def human(size: int) -> str:
    """1048576 -> '1 MiB', 2048 -> '2 KiB', 300 -> '300 bytes'."""
    for shift, unit in ((30, "GiB"), (20, "MiB"), (10, "KiB")):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift} {unit}"
    return f"{size} bytes"


def refused(message: str, step: str = "verify") -> UpgradeRefusedError:
    return UpgradeRefusedError(f"bundle refused: {message}", step)


@dataclass(frozen=True)
class SignedBundle:
    """A bundle whose signature verified: its internal copy, hashes, document and signer."""

    path: Path
    sha256: str  # of the archive file
    json_sha256: str  # of bundle.json
    doc: BundleDoc
    key_id: str
    trusted_comment: str


def copy_in(source: Path, incoming: Path, limit: int) -> tuple[Path, str]:
    """Copy the bundle into `incoming` (fsync'd), at most `limit` bytes; path and SHA-256.

    Everything after reads this copy: the stick may be pulled or changed meanwhile.
    """
    if not source.is_file():
        raise BadInputError(f"{source}: no such bundle file")
    incoming.mkdir(parents=True, exist_ok=True)
    target = incoming / f"{uuid.uuid4().hex}.edgebundle"
    digest = hashlib.sha256()
    copied = 0
    try:
        with source.open("rb") as src, target.open("xb") as dst:
            while block := src.read(CHUNK):
                copied += len(block)
                if copied > limit:
                    raise refused(
                        f"the bundle is larger than the {human(limit)} limit "
                        "(upgrade.max_bundle_mb)",
                        "copy",
                    )
                digest.update(block)
                dst.write(block)
            dst.flush()
            os.fsync(dst.fileno())
    except OSError as exc:
        target.unlink(missing_ok=True)
        raise BadInputError(f"{source}: cannot be read ({exc.strerror or exc})") from None
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target, digest.hexdigest()


@contextmanager
def _open(path: Path) -> Iterator[tarfile.TarFile]:
    try:
        with tarfile.open(path, mode="r:*") as tar:
            yield tar
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise refused(f"the archive is truncated or damaged ({exc})") from None


def _members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """Members one at a time, with the member count capped."""
    for count, member in enumerate(iter(tar.next, None)):
        if count >= MAX_MEMBERS:
            raise refused(f"the archive holds more than {MAX_MEMBERS} members")
        yield member


def _check_member(member: tarfile.TarInfo) -> None:
    try:
        check_member_path(member.name.removesuffix("/") if member.isdir() else member.name)
    except ValueError:
        raise refused(
            f"member {member.name!r} has an unsafe path (absolute, '..' or empty part)"
        ) from None
    kind = _KINDS.get(member.type)
    if kind is not None:
        raise refused(f"member {member.name!r} is {kind}; bundles carry regular files only")
    if not (member.isreg() or member.isdir()) or member.issparse():
        raise refused(f"member {member.name!r} is not a regular file")


def _read_small(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes:
    if member.size > limit:
        raise refused(f"{member.name} is larger than {human(limit)}")
    handle = tar.extractfile(member)
    assert handle is not None  # a regular file
    data = handle.read(limit + 1)
    if len(data) != member.size:
        raise refused(f"the archive is truncated or damaged ({member.name} is cut short)")
    return data


def read_signed(
    path: Path, sha256: str, keys: Sequence[minisign.PublicKey], max_member_bytes: int
) -> SignedBundle:
    """Pass 1: verify bundle.json's signature and that the members are exactly `files`."""
    found: dict[str, tarfile.TarInfo] = {}
    dirs: set[str] = set()
    data = signature = None
    with _open(path) as tar:
        for member in _members(tar):
            _check_member(member)
            name = member.name.removesuffix("/")
            if name in found or name in dirs:
                raise refused(f"member {name!r} appears twice in the archive")
            if member.isdir():
                dirs.add(name)
            elif name == BUNDLE_JSON:
                data = _read_small(tar, member, MAX_BUNDLE_JSON_BYTES)
            elif name == SIGNATURE:
                signature = _read_small(tar, member, minisign.MAX_SIGNATURE_BYTES)
            else:
                found[name] = member
    if data is None:
        raise refused("no bundle.json in the archive: not an upgrade bundle")
    if signature is None:
        raise refused("no signature (bundle.json.minisig is missing): unsigned bundles are refused")
    verified = minisign.verify(data, signature, keys)
    doc = parse_bundle_json(data)
    for name in sorted(found):
        entry = doc.files.get(name)
        if entry is None:
            raise refused(f"member {name!r} is not listed in the signed bundle.json")
        if found[name].size != entry.size:
            raise refused(
                f"member {name!r} is {found[name].size} bytes, the signed bundle.json says "
                f"{entry.size}"
            )
        if entry.size > max_member_bytes:
            raise refused(
                f"member {name!r} is larger than the {human(max_member_bytes)} limit "
                "(upgrade.max_member_mb)"
            )
    missing = sorted(set(doc.files) - set(found))
    if missing:
        raise refused(f"member {missing[0]!r} listed in bundle.json is missing from the archive")
    parents = {str(Path(n).parent) for n in doc.files} | {
        str(p) for n in doc.files for p in Path(n).parents
    }
    stray = sorted(dirs - parents)
    if stray:
        raise refused(f"member {stray[0]!r} is not listed in the signed bundle.json")
    json_sha = hashlib.sha256(data).hexdigest()
    return SignedBundle(path, sha256, json_sha, doc, verified.key_id, verified.trusted_comment)


def _copy_member(src: IO[bytes], target: Path, size: int) -> str:
    digest = hashlib.sha256()
    remaining = size
    with target.open("xb") as dst:
        while remaining:
            block = src.read(min(CHUNK, remaining))
            if not block:
                raise refused(f"the archive is truncated or damaged ({target.name} is cut short)")
            digest.update(block)
            dst.write(block)
            remaining -= len(block)
        dst.flush()
        os.fsync(dst.fileno())
    return digest.hexdigest()


def extract_listed(bundle: SignedBundle, dest: Path) -> None:
    """Pass 2: write the members listed in `files` under `dest` (new), hash-checked."""
    dest.mkdir(parents=True)
    files = bundle.doc.files
    written: set[str] = set()
    try:
        with _open(bundle.path) as tar:
            for member in _members(tar):
                _check_member(member)  # the copy is ours, but it costs nothing to re-check
                name = member.name
                if member.isdir() or name in (BUNDLE_JSON, SIGNATURE):
                    continue
                entry = files.get(name)
                if entry is None or name in written or member.size != entry.size:
                    raise refused(f"member {name!r} changed between the two reads")
                target = dest.joinpath(*name.split("/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                handle = tar.extractfile(member)
                assert handle is not None
                digest = _copy_member(handle, target, entry.size)
                if digest != entry.sha256:
                    raise refused(
                        f"member {name!r} does not match its SHA-256 in the signed bundle.json "
                        "(changed after signing)"
                    )
                written.add(name)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    if written != set(files):
        shutil.rmtree(dest, ignore_errors=True)
        raise refused("the archive changed between the two reads")
