"""The web pages' login session: the API key, sealed (Fernet, a key derived from the service's
secret) in an HttpOnly, SameSite=Strict cookie, and a CSRF token bound to that cookie.

Pages act with exactly the key's role and organisation, as the API does; the browser never
sees the key again after the login form.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken

from domain.crypto import keyed_hash

COOKIE = "obliviate_session"
# Before a session exists, the login form's own CSRF token (double submit: this cookie and the
# form's field must match), so another site cannot log a browser in with the attacker's key.
LOGIN_COOKIE = "obliviate_login"
MAX_AGE_S = 8 * 3600  # a working day; the key itself stays valid until revoked


def _fernet(secret: str) -> Fernet:
    derived = hashlib.sha256(f"session\0{secret}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def seal(secret: str, api_key: str) -> str:
    return _fernet(secret).encrypt(api_key.encode()).decode()


def unseal(secret: str, sealed: str | None) -> str | None:
    """The API key in a session cookie, or None for a missing, forged or expired one."""
    if not sealed:
        return None
    try:
        return _fernet(secret).decrypt(sealed.encode(), ttl=MAX_AGE_S).decode()
    except (InvalidToken, ValueError):
        return None


def csrf_token(secret: str, sealed: str) -> str:
    """The token every form of this session carries (a cross-site form cannot know it)."""
    return keyed_hash(secret, "csrf", sealed)


def csrf_ok(secret: str, sealed: str | None, token: str | None) -> bool:
    if not sealed or not token:
        return False
    return hmac.compare_digest(csrf_token(secret, sealed), token)


def new_login_token() -> str:
    return secrets.token_hex(16)


def login_token_ok(cookie: str | None, field: str) -> bool:
    return bool(cookie) and hmac.compare_digest(cookie or "", field)
