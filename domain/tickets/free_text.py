"""Free text about a request, sealed with the ticket's data key (issue 18).

The filing and the extension reasons are written by people and often name the person the
ticket is about ("erasure asked by Jane Doe by letter"). The records are encrypted under the
ticket's own key; so is this text, so a database dump of an open ticket does not read it and
destroying the key at close destroys it too, whatever copies of the row survive.
"""

from __future__ import annotations

from cryptography.fernet import Fernet

from domain.crypto import ticket_cipher
from domain.errors import Conflict
from domain.settings import Settings
from models import DeletionRequest


def seal(cipher: Fernet, text: str | None) -> str | None:
    return None if text is None else cipher.encrypt(text.encode()).decode()


def open_key(settings: Settings, ticket: DeletionRequest) -> Fernet:
    """The ticket's own data key, for its records and its free text; refused once destroyed."""
    if ticket.wrapped_key is None:
        raise Conflict("data_key_destroyed", ticket=ticket.id)
    return ticket_cipher(settings.data_key.get_secret_value(), ticket.wrapped_key)


def unsealed(settings: Settings, ticket: DeletionRequest) -> dict[str, str | None]:
    """The ticket's free text in clear while its key lives; None for every field after. A
    ticket without text opens no key (this runs on every status poll)."""
    sealed = {"reason": ticket.reason_sealed, "extension_reason": ticket.extension_reason_sealed}
    if ticket.wrapped_key is None or not any(sealed.values()):
        return dict.fromkeys(sealed)
    cipher = open_key(settings, ticket)
    return {
        name: None if token is None else cipher.decrypt(token.encode()).decode()
        for name, token in sealed.items()
    }


def seal_extension(settings: Settings, ticket: DeletionRequest, text: str) -> None:
    """extend_deadline refuses closed tickets before this; open_key refuses them again."""
    ticket.extension_reason_sealed = seal(open_key(settings, ticket), text)
