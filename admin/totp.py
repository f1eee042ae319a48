"""TOTP second factor (RFC 6238): new secrets, otpauth URIs, one-time codes, sealed storage."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pyotp
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

# Pure but for the randomness of new secrets: `now_s` comes in as an argument.

STEP_S = 30
# One step either side: a phone clock a little off still works, a code lives at most 90 s.
WINDOW_STEPS = 1
_CODE_RE = re.compile(r"^[0-9]{6}$")
_SECRET_RE = re.compile(r"^[A-Z2-7]{32}$")
_SEALED, _PLAIN = "fernet:", "plain:"


class TotpKeyError(Exception):
    """A stored secret cannot be opened: it was sealed with a key that is not configured."""


def new_secret() -> str:
    """160 random bits in base32 (what authenticator apps expect)."""
    return pyotp.random_base32(32)


def is_secret(value: str) -> bool:
    """Whether `value` is spelt as new_secret() makes them (a form sends it back at enrolment)."""
    return bool(_SECRET_RE.match(value))


def provisioning_uri(secret: str, user_name: str, issuer: str) -> str:
    """The otpauth:// URI an authenticator app reads (as text or as a QR code)."""
    return pyotp.TOTP(secret).provisioning_uri(name=user_name, issuer_name=issuer)


def accepted_step(secret: str, code: str, now_s: float, last_step: int) -> int | None:
    """The time step whose code `code` is, if it is within the window and later than the last
    step accepted for this user (a code is good once); None otherwise."""
    code = code.strip().replace(" ", "")
    if not _CODE_RE.match(code):
        return None
    totp = pyotp.TOTP(secret)
    now_step = int(now_s) // STEP_S
    for step in range(now_step - WINDOW_STEPS, now_step + WINDOW_STEPS + 1):
        if step > last_step and hmac.compare_digest(totp.at(step * STEP_S), code):
            return step
    return None


def _fernet(keys: list[str]) -> MultiFernet:
    """Any string works as a key: its SHA-256 is the Fernet key (so 32 random bytes or a long
    passphrase both do)."""
    return MultiFernet(
        [Fernet(base64.urlsafe_b64encode(hashlib.sha256(k.encode()).digest())) for k in keys]
    )


def seal(secret: str, keys: list[str]) -> str:
    """What is stored: the secret encrypted with the first key, or marked plain without keys."""
    if not keys:
        return _PLAIN + secret
    return _SEALED + _fernet(keys).encrypt(secret.encode()).decode()


def unseal(stored: str, keys: list[str]) -> str:
    """The secret from what seal() stored; TotpKeyError when no configured key opens it."""
    if stored.startswith(_PLAIN):
        return stored.removeprefix(_PLAIN)
    if not stored.startswith(_SEALED) or not keys:
        raise TotpKeyError("the TOTP secret is sealed and no admin_totp_key opens it")
    try:
        return _fernet(keys).decrypt(stored.removeprefix(_SEALED).encode()).decode()
    except InvalidToken as exc:
        raise TotpKeyError("no configured admin_totp_key opens the TOTP secret") from exc


def key_list(setting: str) -> list[str]:
    """The keys of the admin_totp_key setting (comma-separated; the first seals)."""
    return [k.strip() for k in setting.split(",") if k.strip()]
