"""Shared by the API tests: test users, cheap scrypt parameters, logging a client in, and
Starlette's TestClient imported once without its httpx deprecation warning."""

from __future__ import annotations

import warnings

import numpy as np
from starlette.exceptions import StarletteDeprecationWarning

from edge.auth import ScryptParams

with warnings.catch_warnings():
    # Starlette >= 1.x prefers httpx2 for its test client and warns when it falls back to
    # httpx; either drives the app the same way.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

__all__ = ["ALARM_OUTPUT", "FAST_KDF", "PASSWORD", "USERS", "TestClient", "login"]

# Cheap parameters so tests log in quickly; the stored hash names them, so verification
# is the real code path. tests/auth checks the defaults are memory-hard.
FAST_KDF = ScryptParams(log2_n=8, r=8, p=1)
PASSWORD = "correct horse battery"
USERS = {"olga": "operator", "tom": "technician", "vera": "vendor"}
# One box of class 1 ("knife"), score 0.9, centred in the 64 x 64 input: every frame alarms.
ALARM_OUTPUT = np.array([[[32.0], [32.0], [20.0], [20.0], [0], [0.9], [0], [0]]], np.float32)


def login(client: TestClient, name: str, password: str = PASSWORD) -> str:
    """Log the client in (session cookie); returns the CSRF token."""
    response = client.post("/api/login", json={"name": name, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["csrf_token"])
