"""Passwords (argon2id) and random credentials (session ids, CSRF and API tokens, stored hashed)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from admin.errors import Invalid

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024
TOKEN_PREFIX = "uct_"
# argon2-cffi's defaults (RFC 9106 low-memory profile: argon2id, t=3, m=64 MiB, p=4).
_hasher = PasswordHasher()
_dummy_hash: str | None = None


def check_password_rules(password: str, field: str = "password") -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise Invalid(field, f"must be at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise Invalid(field, f"must be at most {MAX_PASSWORD_CHARS} characters")


def hash_password(password: str) -> str:
    """An argon2id hash (CPU- and memory-heavy on purpose: call it off the event loop)."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether the password matches; for an unknown user (None) it spends the same time."""
    global _dummy_hash  # noqa: PLW0603 - computed once, on the first unknown user
    if password_hash is None:
        if _dummy_hash is None:
            _dummy_hash = _hasher.hash(secrets.token_hex(16))
        password_hash = _dummy_hash
        password = "x" + password  # never matches the dummy
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return False


def new_secret() -> str:
    """A random value for a session id or a CSRF token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def new_api_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def digest(value: str) -> str:
    """What is stored of a session id or token: its SHA-256, hex (a lookup key, not a password:
    the value already has 256 random bits, so a slow hash would add nothing)."""
    return hashlib.sha256(value.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    """Compare secrets in constant time."""
    return hmac.compare_digest(a.encode(), b.encode())
