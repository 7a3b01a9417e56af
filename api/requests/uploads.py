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
        byte = f"{raw[error.start]:#04x}"
        raise InvalidInput("not_utf8", source=filename, line=line, byte=byte) from error
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as error:
            raise _not_json(filename, error.lineno, error) from error
        return rows, None
    rows, lines = [], []
    for number, row in enumerate(text.splitlines(), 1):
        if row.strip():
            try:
                rows.append(json.loads(row))
            except json.JSONDecodeError as error:
                raise _not_json(filename, number, error) from error
            lines.append(number)
    return rows, lines


def _not_json(filename: str, line: int, error: json.JSONDecodeError) -> InvalidInput:
    return InvalidInput("not_json", source=filename, line=line, reason=error.msg)


def at_line(error: InvalidInput, filename: str, lines: list[int] | None) -> InvalidInput:
    """A record error restated in the file's terms: its name, and its line where it has lines."""
    index = error.params.get("index")
    if index is None:
        return error
    params = {**error.params, "source": filename}
    if lines is not None:
        params["line"] = lines[index]
    return InvalidInput(error.code, **params)
