"""Errors carry their HTTP status; one handler renders them all as {"detail": ..., ...}."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError


class ServiceError(Exception):
    status_code = 400

    def __init__(self, detail: str, **extra):
        super().__init__(detail)
        self.detail, self.extra = detail, extra


class NotFound(ServiceError):
    status_code = 404


class Unauthorized(ServiceError):
    status_code = 401


class Forbidden(ServiceError):
    status_code = 403


class Conflict(ServiceError):
    status_code = 409


class InvalidInput(ServiceError):
    status_code = 422


class PayloadTooLarge(ServiceError):
    status_code = 413


def validation_details(error: RequestValidationError | ValidationError) -> list[dict]:
    """Where and why, without pydantic's `input` and `ctx`: they echo what was sent (a
    person's data in a record, or a NaN that JSON cannot even carry back)."""
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in error.errors()]


def install_error_handler(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_details(error)}, status_code=422)

    @app.exception_handler(ServiceError)
    async def _render(_request: Request, error: ServiceError) -> JSONResponse:
        headers = {"WWW-Authenticate": "ApiKey"} if isinstance(error, Unauthorized) else None
        return JSONResponse(
            {"detail": error.detail, **error.extra}, status_code=error.status_code, headers=headers
        )
