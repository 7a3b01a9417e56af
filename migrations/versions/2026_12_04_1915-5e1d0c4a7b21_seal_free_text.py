"""Seal the tickets' free text with each ticket's data key (issue 18: reasons in plaintext).

`reason` and `extension_reason` become `reason_sealed` and `extension_reason_sealed`: Fernet
tokens under the ticket's own key, so they go with the key when the ticket closes. Open
tickets' existing text is sealed here, which needs the deployment's data key (the caller's,
`upgrade_database(data_key=)`, else the settings'); closed tickets' text is dropped (their key
is gone, and databases from before closing cleared it may still hold it in plaintext).

Revision ID: 5e1d0c4a7b21
Revises: 48e9dc6b3987
Create Date: 2026-12-04 19:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5e1d0c4a7b21"
down_revision: str | None = "48e9dc6b3987"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RENAMES = (("reason", "reason_sealed"), ("extension_reason", "extension_reason_sealed"))


def _rewrite(convert) -> None:
    """Apply `convert(cipher, text)` to every open ticket's free text, row by row."""
    from domain.crypto import ticket_cipher

    config = op.get_context().config
    data_key = config.attributes.get("data_key") if config is not None else None
    if data_key is None:
        from domain.settings import Settings

        data_key = Settings().data_key.get_secret_value()
    connection = op.get_bind()
    rows = connection.execute(
        sa.text(
            "SELECT id, wrapped_key, reason_sealed, extension_reason_sealed "
            "FROM deletion_requests WHERE wrapped_key IS NOT NULL"
        )
    ).all()
    for ticket_id, wrapped_key, reason, extension_reason in rows:
        cipher = ticket_cipher(data_key, wrapped_key)
        connection.execute(
            sa.text(
                "UPDATE deletion_requests SET reason_sealed = :reason, "
                "extension_reason_sealed = :extension_reason WHERE id = :id"
            ),
            {
                "id": ticket_id,
                "reason": None if reason is None else convert(cipher, reason),
                "extension_reason": (
                    None if extension_reason is None else convert(cipher, extension_reason)
                ),
            },
        )


def upgrade() -> None:
    # A plain RENAME COLUMN, also on SQLite (>= 3.25): a batch copy of the table would trip
    # over the rows of request_items and jobs that point at it.
    for old, new in RENAMES:
        op.alter_column("deletion_requests", old, new_column_name=new)
    op.execute(
        "UPDATE deletion_requests SET reason_sealed = NULL, extension_reason_sealed = NULL "
        "WHERE wrapped_key IS NULL"
    )
    _rewrite(lambda cipher, text: cipher.encrypt(text.encode()).decode())


def downgrade() -> None:
    _rewrite(lambda cipher, token: cipher.decrypt(token.encode()).decode())
    for old, new in RENAMES:
        op.alter_column("deletion_requests", new, new_column_name=old)
