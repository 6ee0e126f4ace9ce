"""Password hashing with scrypt (memory-hard, in the standard library), as PHC strings.

A stored hash carries its own parameters and salt, `$scrypt$ln=15,r=8,p=3$<salt>$<key>`
(base64 without padding), so the defaults can be raised later: old hashes still verify,
and `needs_rehash` tells the login to store a new one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass

from edge.auth.errors import BadCredentialError

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024
SALT_BYTES = 16
KEY_BYTES = 32
MAX_KDF_MEMORY = 256 << 20  # refuse parameters (even stored ones) that would take more

_PHC = re.compile(
    r"\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]{16,88})\$([A-Za-z0-9+/]{16,88})"
)


@dataclass(frozen=True)
class ScryptParams:
    """scrypt cost: N = 2**log2_n, block size r, parallelism p; memory ~ 128 * r * N bytes.

    The default follows OWASP's scrypt table (N=2^15, r=8, p=3): 32 MiB and ~0.4 s per
    login on a 2-core appliance.
    """

    log2_n: int = 15
    r: int = 8
    p: int = 3

    def __post_init__(self) -> None:
        if not (1 <= self.log2_n <= 22 and 1 <= self.r <= 32 and 1 <= self.p <= 16):
            raise BadCredentialError(
                f"scrypt parameters: expected 1 <= ln <= 22, 1 <= r <= 32, 1 <= p <= 16, "
                f"got ln={self.log2_n}, r={self.r}, p={self.p}"
            )
        if self.memory_bytes > MAX_KDF_MEMORY:
            raise BadCredentialError(
                f"scrypt parameters: {self.memory_bytes >> 20} MiB per hash, "
                f"more than the {MAX_KDF_MEMORY >> 20} MiB allowed"
            )

    @property
    def memory_bytes(self) -> int:
        return 128 * self.r * ((1 << self.log2_n) + self.p + 2)


DEFAULT_SCRYPT = ScryptParams()


def check_password(password: str) -> None:
    """BadCredentialError unless 8..1024 characters (no composition rules: length counts)."""
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise BadCredentialError(
            f"password: expected {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters, "
            f"got {len(password)}"
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, salt: bytes, params: ScryptParams, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=1 << params.log2_n,
        r=params.r,
        p=params.p,
        maxmem=params.memory_bytes + (1 << 16),
        dklen=length,
    )


def hash_password(password: str, params: ScryptParams = DEFAULT_SCRYPT) -> str:
    """The PHC string to store for `password`, with a fresh random salt."""
    check_password(password)
    salt = os.urandom(SALT_BYTES)
    key = _derive(password, salt, params, KEY_BYTES)
    return f"$scrypt$ln={params.log2_n},r={params.r},p={params.p}${_b64(salt)}${_b64(key)}"


def parse_hash(encoded: str) -> tuple[ScryptParams, bytes, bytes]:
    """(params, salt, key) of a stored hash; BadCredentialError when it is not one of ours."""
    match = _PHC.fullmatch(encoded)
    if match is None:
        raise BadCredentialError("stored password hash: not a $scrypt$ PHC string")
    ln, r, p = (int(match.group(i)) for i in (1, 2, 3))
    return ScryptParams(ln, r, p), _unb64(match.group(4)), _unb64(match.group(5))


def verify_password(password: str, encoded: str) -> bool:
    """Whether `password` matches the stored hash (constant-time comparison of the keys)."""
    if len(password) > MAX_PASSWORD_CHARS:
        return False
    params, salt, key = parse_hash(encoded)
    return hmac.compare_digest(_derive(password, salt, params, len(key)), key)


def needs_rehash(encoded: str, params: ScryptParams = DEFAULT_SCRYPT) -> bool:
    """Whether a stored hash was made with other parameters than `params`."""
    return parse_hash(encoded)[0] != params
