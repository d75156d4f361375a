"""Salted scrypt password hashes: the demo's one piece of CPU-bound work.

The cost is deliberately small (a few ms per hash) so that a login stays short next to the
simulated I/O; a real service would use `n=2**14` or more.
"""

from __future__ import annotations

import hashlib
import hmac
import os

SCRYPT_N = 2**9
SCRYPT_R = 8
SCRYPT_P = 1


def hash_password(password: str) -> str:
    """A salted scrypt hash of `password`, as `scrypt$n$r$p$salt$hash` (hex)."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(stored: str, password: str) -> bool:
    """Whether `password` matches the `stored` hash, compared in constant time."""
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except ValueError:
        return False
    return hmac.compare_digest(digest.hex(), expected)
