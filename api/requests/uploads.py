"""An uploaded records file: JSON Lines or one JSON array, strict UTF-8 (a BOM is allowed).

Found in use (issue 18): a Latin-1 file was decoded with replacement characters and stored as
U+FFFD; errors named the record's index, not the line a person can find in the file.
"""

from __future__ import annotations

import json

from domain.errors import InvalidInput


def read_records(raw: bytes, filename: str) -> tuple[list, list[int] | None]:
    """The file's rows and, for JSON Lines, each row's line number (None for a JSON array)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise InvalidInput(
            f"{filename}: line {line}: not UTF-8 (byte {raw[error.start]:#04x}); save the file "
            "as UTF-8",
            line=line,
        ) from error
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidInput(f"{filename}: line {error.lineno}: not JSON ({error.msg})",
                               line=error.lineno) from error  # fmt: skip
        return rows, None
    rows, lines = [], []
    for number, row in enumerate(text.splitlines(), 1):
        if row.strip():
            try:
                rows.append(json.loads(row))
            except json.JSONDecodeError as error:
                raise InvalidInput(
                    f"{filename}: line {number}: not JSON ({error.msg})", line=number
                ) from error
            lines.append(number)
    return rows, lines


def at_line(error: InvalidInput, filename: str, lines: list[int] | None) -> InvalidInput:
    """A record error restated with the file's line number where the file has lines."""
    index = error.extra.get("index")
    if lines is None or index is None:
        return error
    detail = error.detail.removeprefix("records: ").replace(
        f"record {index}", f"line {lines[index]}", 1
    )
    detail = f"{filename}: {detail}"
    return InvalidInput(detail, **{**error.extra, "line": lines[index]})
