"""Keyed hashes and per-ticket encryption (Fernet: AES-128-CBC + HMAC-SHA256, from cryptography).

Each ticket's records are encrypted with their own data key; the data key is stored wrapped by
the deployment's `data_key`. Destroying the wrapped key when the ticket closes makes the
records unreadable for good, while their hashes (and the audit chain over them) still verify.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken


def keyed_hash(secret: str, purpose: str, value: str) -> str:
    """HMAC-SHA256 of `value`, domain-separated by `purpose` so one hash never stands for
    another kind of value."""
    return hmac.new(secret.encode(), f"{purpose}\0{value}".encode(), hashlib.sha256).hexdigest()


def _fernet_from_secret(secret: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()))


def new_wrapped_key(master_secret: str) -> bytes:
    return _fernet_from_secret(master_secret).encrypt(Fernet.generate_key())


def ticket_cipher(master_secret: str, wrapped_key: bytes) -> Fernet:
    try:
        return Fernet(_fernet_from_secret(master_secret).decrypt(wrapped_key))
    except InvalidToken as error:
        raise ValueError("the ticket's data key does not open with this data_key") from error
