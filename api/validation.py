"""Input the service cannot store is refused at the edge with a 422 naming the problem.

Found by fuzzing (issue 18): a NUL character in any text, a number beyond the database's
integer range, NaN or Infinity in a body, or a datetime without a time zone reached the
database and came back as a 500, with the INSERT's parameters (a person's name in a free-text
reason among them) in the traceback.
"""

from __future__ import annotations

import json
from typing import Annotated
from urllib.parse import unquote_to_bytes

from fastapi import Path, Query

from domain.validation import DB_INT_MAX

VersionNumber = Annotated[int, Path(ge=1, le=DB_INT_MAX)]
Offset = Annotated[int, Query(ge=0, le=DB_INT_MAX)]


class RejectNul:
    """ASGI middleware: a NUL character in the path or the query string is a 422 before any
    route runs (path and query parameters are not pydantic bodies)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path") or scope["path"].encode()
            if b"\x00" in unquote_to_bytes(raw) + unquote_to_bytes(scope.get("query_string", b"")):
                body = json.dumps({"detail": "NUL characters are not allowed in the URL"}).encode()
                await send({"type": "http.response.start", "status": 422,
                            "headers": [(b"content-type", b"application/json")]})  # fmt: skip
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
