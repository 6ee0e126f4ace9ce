"""minisign's key and signature files, read and written here, verified with `cryptography`.

Formats (as minisign 0.11 writes them; every binary field base64 on its own line below an
`untrusted comment: ` line):

    public key   "Ed" | key id (8) | Ed25519 public key (32)
    secret key   "Ed" | kdf "Sc" or 00 00 | "B2" | salt (32) | opslimit (8 LE) |
                 memlimit (8 LE) | key id (8) | seed + public key (64) | checksum (32)
    signature    "ED" | key id (8) | Ed25519 signature of BLAKE2b-512(file) (64), then a
                 `trusted comment: ` line, then the global signature (64) of
                 signature || trusted comment bytes

Only unencrypted secret keys (`minisign -G -W`, kdf 00 00) are read: their checksum field
is all zeros, as minisign leaves it. The key id is shown as minisign shows it: the 8 bytes
as a little-endian number in upper-case hex.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from edge.upgrade.errors import KeyFileError, SignatureError

UNTRUSTED = "untrusted comment: "
TRUSTED = "trusted comment: "
SIG_ALG = b"Ed"  # key algorithm; also the legacy (not prehashed) signature algorithm
SIG_ALG_HASHED = b"ED"
KDF_NONE = b"\x00\x00"
KDF_SCRYPT = b"Sc"
CHK_ALG = b"B2"
KEY_ID_BYTES = 8
MAX_KEY_FILE_BYTES = 4096
MAX_SIGNATURE_BYTES = 16384
MAX_TRUSTED_COMMENT_BYTES = 8192
_PUBLIC_LEN = 2 + KEY_ID_BYTES + 32
_SECRET_LEN = 2 + 2 + 2 + 32 + 8 + 8 + KEY_ID_BYTES + 64 + 32
_SIGNATURE_LEN = 2 + KEY_ID_BYTES + 64


def key_id_text(key_id: bytes) -> str:
    """How minisign prints a key id: the 8 bytes as a little-endian number, hex."""
    return f"{int.from_bytes(key_id, 'little'):016X}"


@dataclass(frozen=True)
class PublicKey:
    key_id: bytes
    key: bytes  # 32-byte Ed25519 public key

    @property
    def id_text(self) -> str:
        return key_id_text(self.key_id)

    def to_text(self, comment: str | None = None) -> str:
        """The .pub file minisign writes."""
        blob = base64.b64encode(SIG_ALG + self.key_id + self.key).decode("ascii")
        return f"{UNTRUSTED}{comment or 'minisign public key ' + self.id_text}\n{blob}\n"


@dataclass(frozen=True)
class SecretKey:
    key_id: bytes
    seed: bytes  # 32-byte Ed25519 seed
    public: bytes  # 32-byte Ed25519 public key

    @property
    def public_key(self) -> PublicKey:
        return PublicKey(self.key_id, self.public)

    def to_text(self) -> str:
        """An unencrypted secret key file, byte for byte as `minisign -G -W` writes one."""
        zeros = bytes(32 + 8 + 8)
        blob = SIG_ALG + KDF_NONE + CHK_ALG + zeros + self.key_id + self.seed + self.public
        blob += bytes(32)  # checksum: minisign computes it only for encrypted keys
        text = base64.b64encode(blob).decode("ascii")
        return f"{UNTRUSTED}minisign secret key (unencrypted: keep it offline)\n{text}\n"


@dataclass(frozen=True)
class Verified:
    """What a good signature says: who signed (key id) and the trusted comment."""

    key_id: str
    trusted_comment: str


def generate_key() -> SecretKey:
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    seed = private.private_bytes_raw()
    return SecretKey(os.urandom(KEY_ID_BYTES), seed, public)


def _read_text(path: Path, limit: int, what: str) -> str:
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise KeyFileError(f"{path}: larger than a {what} can be ({limit} bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyFileError(f"{path}: not a minisign {what} (not text)") from None


def _blob(line: str, length: int, where: str) -> bytes:
    try:
        data = base64.b64decode(line.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"{where}: not valid base64") from None
    if len(data) != length:
        raise KeyFileError(f"{where}: expected {length} bytes, got {len(data)}")
    return data


def _key_line(text: str, where: str) -> str:
    """The base64 line of a key file: the line after the untrusted comment, or the only one."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and lines[0].startswith(UNTRUSTED):
        lines = lines[1:]
    if not lines:
        raise KeyFileError(f"{where}: no key in it")
    return lines[0]


def parse_public_key(text: str, where: str = "public key") -> PublicKey:
    """A minisign public key: the .pub file's text, or its base64 line alone."""
    blob = _blob(_key_line(text, where), _PUBLIC_LEN, where)
    if blob[:2] != SIG_ALG:
        raise KeyFileError(f"{where}: not an Ed25519 minisign public key")
    return PublicKey(blob[2:10], blob[10:])


def parse_secret_key(text: str, where: str = "secret key") -> SecretKey:
    """An unencrypted minisign secret key; KeyFileError says why another cannot be used."""
    blob = _blob(_key_line(text, where), _SECRET_LEN, where)
    sig_alg, kdf_alg, chk_alg = blob[0:2], blob[2:4], blob[4:6]
    if sig_alg != SIG_ALG or chk_alg != CHK_ALG:
        raise KeyFileError(f"{where}: not an Ed25519 minisign secret key")
    if kdf_alg == KDF_SCRYPT:
        raise KeyFileError(
            f"{where}: the secret key is password-protected (encrypted with scrypt); edge reads "
            "only unencrypted keys: make one with `edge bundle keygen` or `minisign -G -W`, "
            "and keep it on an offline machine"
        )
    if kdf_alg != KDF_NONE:
        raise KeyFileError(f"{where}: unknown key derivation {kdf_alg!r}")
    key_id, seed, public, chk = blob[54:62], blob[62:94], blob[94:126], blob[126:158]
    if any(chk):
        expected = hashlib.blake2b(sig_alg + key_id + seed + public, digest_size=32).digest()
        if not hmac.compare_digest(chk, expected):
            raise KeyFileError(f"{where}: checksum does not match: the key file is damaged")
    derived = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    if derived.public_bytes(Encoding.Raw, PublicFormat.Raw) != public:
        raise KeyFileError(f"{where}: the secret and public halves do not match: damaged")
    return SecretKey(key_id, seed, public)


def read_public_key(path: Path) -> PublicKey:
    return parse_public_key(_read_text(path, MAX_KEY_FILE_BYTES, "public key"), str(path))


def read_secret_key(path: Path) -> SecretKey:
    return parse_secret_key(_read_text(path, MAX_KEY_FILE_BYTES, "secret key"), str(path))


def write_key_pair(secret: SecretKey, secret_path: Path, public_path: Path) -> None:
    """Write both files; never overwrites (the secret key file is readable by its owner only)."""
    for path in (secret_path, public_path):
        if path.exists():
            raise KeyFileError(f"{path}: already exists; not overwritten")
    fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secret.to_text())
    public_path.write_text(secret.public_key.to_text(), encoding="ascii")


def sign(
    data: bytes, secret: SecretKey, trusted_comment: str, untrusted_comment: str | None = None
) -> str:
    """A prehashed ("ED") minisign signature file of `data`, as `minisign -S` writes it."""
    if "\n" in trusted_comment or "\r" in trusted_comment:
        raise KeyFileError("trusted comment: must be one line")
    comment = trusted_comment.encode("utf-8")
    if len(comment) > MAX_TRUSTED_COMMENT_BYTES:
        raise KeyFileError(f"trusted comment: longer than {MAX_TRUSTED_COMMENT_BYTES} bytes")
    private = Ed25519PrivateKey.from_private_bytes(secret.seed)
    signature = private.sign(hashlib.blake2b(data, digest_size=64).digest())
    global_signature = private.sign(signature + comment)
    line = base64.b64encode(SIG_ALG_HASHED + secret.key_id + signature).decode("ascii")
    untrusted = untrusted_comment or "signature from minisign secret key"
    return (
        f"{UNTRUSTED}{untrusted}\n{line}\n{TRUSTED}{trusted_comment}\n"
        f"{base64.b64encode(global_signature).decode('ascii')}\n"
    )


def default_trusted_comment(file_name: str) -> str:
    """What minisign puts there by default."""
    return f"timestamp:{int(time.time())}\tfile:{file_name}\thashed"


def verify(data: bytes, signature_text: bytes, keys: Iterable[PublicKey]) -> Verified:
    """Check a minisign signature of `data` against the trusted `keys`.

    SignatureError when the signature file is malformed, made with a key not among
    `keys`, or does not verify (the data or the trusted comment changed after signing).
    """
    if len(signature_text) > MAX_SIGNATURE_BYTES:
        raise SignatureError("signature file larger than a minisign signature can be")
    try:
        lines = signature_text.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise SignatureError("signature file is not a minisign signature (not text)") from None
    if len(lines) < 4 or not lines[0].startswith(UNTRUSTED) or not lines[2].startswith(TRUSTED):
        raise SignatureError(
            "signature file is not a minisign signature (expected an untrusted comment, "
            "the signature, a trusted comment and the global signature)"
        )
    try:
        blob = _blob(lines[1], _SIGNATURE_LEN, "signature")
        global_signature = _blob(lines[3], 64, "global signature")
    except KeyFileError as exc:
        raise SignatureError(f"signature file is damaged: {exc.message}") from None
    algorithm, key_id, signature = blob[:2], blob[2:10], blob[10:]
    if algorithm == SIG_ALG_HASHED:
        message = hashlib.blake2b(data, digest_size=64).digest()
    elif algorithm == SIG_ALG:
        message = data  # legacy minisign -l: the file itself was signed
    else:
        raise SignatureError(f"signature algorithm {algorithm!r} is not a minisign one")
    key = next((k for k in keys if k.key_id == key_id), None)
    if key is None:
        raise SignatureError(
            f"signature made with untrusted key {key_id_text(key_id)}: that vendor key is not "
            "installed on this device"
        )
    public = Ed25519PublicKey.from_public_bytes(key.key)
    try:
        public.verify(signature, message)
    except InvalidSignature:
        raise SignatureError(
            f"signature does not match (key {key.id_text}): the signed file was changed "
            "after signing, or the signature is damaged"
        ) from None
    trusted = lines[2][len(TRUSTED) :]
    try:
        public.verify(global_signature, signature + trusted.encode("utf-8"))
    except InvalidSignature:
        raise SignatureError(
            f"the signature's trusted comment was changed after signing (key {key.id_text})"
        ) from None
    return Verified(key.id_text, trusted)
