"""Errors carry their HTTP status; one handler renders them all as {"detail": ..., ...}."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from domain.errors import RateLimited, ServiceError, Unauthorized


class ErrorBody(BaseModel):
    """Every error the API answers: what went wrong, and for some the field, index or line."""

    model_config = ConfigDict(extra="allow")  # the refusal's parameters, e.g. line, field

    detail: str | list[dict]
    code: str | None = Field(
        None, description="what was refused, stable for programs (domain/messages.py)"
    )


# The statuses every /v1 route may answer, for the OpenAPI schema (issue 18: it listed only
# 200/201/422 while the API answers all of these).
ERROR_RESPONSES: dict[int | str, dict] = {
    400: {"model": ErrorBody, "description": "Bad request"},
    401: {"model": ErrorBody, "description": "Missing, invalid or revoked API key"},
    403: {"model": ErrorBody, "description": "The key's role may not do this"},
    404: {"model": ErrorBody, "description": "Not found, or another organisation's"},
    409: {"model": ErrorBody, "description": "Conflicts with the current state"},
    413: {"model": ErrorBody, "description": "Request body too large"},
    422: {"model": ErrorBody, "description": "Invalid input: where and why"},
    429: {"model": ErrorBody, "description": "Too many requests with this key (see Retry-After)"},
}


def validation_details(error: RequestValidationError | ValidationError) -> list[dict]:
    """Where and why, without pydantic's `input` and `ctx`: they echo what was sent (a
    person's data in a record, or a NaN that JSON cannot even carry back)."""
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in error.errors()]


def install_error_handler(
    app: FastAPI, page_error: Callable[[Request, ServiceError], Response] | None = None
) -> None:
    """JSON errors for the API; `page_error` renders them for the web pages (/ui)."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_details(error)}, status_code=422)

    @app.exception_handler(ServiceError)
    async def _render(request: Request, error: ServiceError) -> Response:
        if page_error is not None and request.url.path.startswith("/ui/"):
            return page_error(request, error)
        headers = {"WWW-Authenticate": "ApiKey"} if isinstance(error, Unauthorized) else None
        if isinstance(error, RateLimited):
            headers = {"Retry-After": str(error.retry_after)}
        body = {**jsonable_encoder(error.params), "detail": error.detail, "code": error.code}
        return JSONResponse(body, status_code=error.status_code, headers=headers)
