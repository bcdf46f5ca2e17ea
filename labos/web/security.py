"""Roles, password hashing (argon2id via argon2-cffi) and secret tokens; no database access here."""

from __future__ import annotations

import hashlib
import re
import secrets
from enum import StrEnum
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from labos.web.errors import AccountError

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile defaults
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 256


class Role(StrEnum):
    """viewer reads; operator also runs the lab and answers interventions; admin also manages users."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, needed: Role | str) -> bool:
        return self.rank >= Role(needed).rank


_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


def parse_role(value: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError:
        raise AccountError(f"unknown role {value!r}: use one of viewer, operator, admin") from None


def check_username(name: str) -> str:
    name = (name or "").strip().lower()
    if not USERNAME_RE.match(name):
        raise AccountError(
            f"user name {name!r} is not allowed: 2-64 characters, lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_password(password: str, username: str | None = None) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise AccountError(f"password is too short: use at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"password is too long: at most {MAX_PASSWORD} characters")
    if username and password.lower() == username.lower():
        raise AccountError("password must not be the user name")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


@cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


def burn_verify(password: str) -> None:
    """Verify against a throw-away hash so a login with an unknown name takes as long as a wrong password."""
    verify_password(_dummy_hash(), password)


def new_token() -> str:
    """A 256-bit URL-safe secret (session cookie value or API token)."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What the database stores instead of the token: a leaked table does not let anyone sign in."""
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_equal(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and secrets.compare_digest(str(a), str(b))
