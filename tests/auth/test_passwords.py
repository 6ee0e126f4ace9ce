"""scrypt password hashes: memory-hard defaults, parameters stored with the hash."""

from __future__ import annotations

import pytest

from edge.auth.errors import BadCredentialError
from edge.auth.passwords import (
    DEFAULT_SCRYPT,
    ScryptParams,
    hash_password,
    needs_rehash,
    parse_hash,
    verify_password,
)

FAST = ScryptParams(log2_n=8, r=8, p=1)


def test_defaults_are_memory_hard() -> None:
    # OWASP's scrypt table: N=2^15, r=8, p=3 (32 MiB per hash).
    assert DEFAULT_SCRYPT.memory_bytes >= 32 << 20
    encoded = hash_password("correct horse", DEFAULT_SCRYPT)
    assert encoded.startswith("$scrypt$ln=15,r=8,p=3$")
    assert verify_password("correct horse", encoded)


def test_hash_carries_salt_and_parameters() -> None:
    a, b = hash_password("same password", FAST), hash_password("same password", FAST)
    assert a != b  # a fresh salt each time
    params, salt, key = parse_hash(a)
    assert (params, len(salt), len(key)) == (FAST, 16, 32)
    assert verify_password("same password", a) and verify_password("same password", b)
    assert not verify_password("same passworD", a)
    assert not verify_password("x" * 2000, a)


def test_old_parameters_still_verify_and_ask_for_a_rehash() -> None:
    old = hash_password("correct horse", ScryptParams(log2_n=6, r=8, p=1))
    assert verify_password("correct horse", old)
    assert needs_rehash(old, FAST) and not needs_rehash(hash_password("correct horse", FAST), FAST)


@pytest.mark.parametrize(
    ("password", "ok"),
    [("", False), ("seven77", False), ("eight888", True), ("p" * 1024, True), ("p" * 1025, False)],
)
def test_password_length_bounds(password: str, ok: bool) -> None:
    if ok:
        assert verify_password(password, hash_password(password, FAST))
    else:
        with pytest.raises(BadCredentialError, match="password: expected 8 to 1024"):
            hash_password(password, FAST)


@pytest.mark.parametrize(
    "stored",
    [
        "plain text",
        "$scrypt$ln=15,r=8,p=3$c2FsdHNhbHRzYWx0$",
        "$scrypt$ln=30,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5",  # 128 GiB
        "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
    ],
)
def test_foreign_or_oversized_hashes_are_refused(stored: str) -> None:
    with pytest.raises(BadCredentialError):
        verify_password("whatever1", stored)
