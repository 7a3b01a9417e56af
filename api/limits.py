"""Requests are bounded before anything reads them (issue 18: a 60 MB inline body was parsed
in full, also when the request carried no API key and was answered 401 afterwards)."""

from __future__ import annotations

import json

# Room for the multipart framing and the metadata field around an uploaded file.
MULTIPART_OVERHEAD = 1024 * 1024


async def _reply(send, status: int, detail: str, headers=()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), *headers]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """ASGI middleware: an API request without a key is a 401 before its body is read; a body
    over the limit (inline JSON: `max_json_bytes`; a multipart upload: `max_upload_bytes` plus
    framing) is a 413, from its Content-Length or, when streamed, as soon as it passes it."""

    def __init__(self, app, max_json_bytes: int, max_upload_bytes: int) -> None:
        self.app, self.max_json, self.max_upload = app, max_json_bytes, max_upload_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if b"x-api-key" not in headers:
            await _reply(send, 401, "missing X-API-Key header", [(b"www-authenticate", b"ApiKey")])
            return
        multipart = headers.get(b"content-type", b"").startswith(b"multipart/")
        limit = self.max_upload + MULTIPART_OVERHEAD if multipart else self.max_json
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _reply(send, 413, f"the request body is over {limit} bytes")
            return
        seen, rejected = 0, False

        async def bounded_receive():
            nonlocal seen, rejected
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit and not rejected:
                    # Answer now; the app sees a disconnected client and whatever it answers
                    # to that is dropped (FastAPI turns errors raised here into a 400).
                    rejected = True
                    await _reply(send, 413, f"the request body is over {limit} bytes")
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not rejected:
                await send(message)

        await self.app(scope, bounded_receive, guarded_send)
