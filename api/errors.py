"""Errors carry their HTTP status; one handler renders them all as {"detail": ..., ...}."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


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


def install_error_handler(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _render(_request: Request, error: ServiceError) -> JSONResponse:
        headers = {"WWW-Authenticate": "ApiKey"} if isinstance(error, Unauthorized) else None
        return JSONResponse(
            {"detail": error.detail, **error.extra}, status_code=error.status_code, headers=headers
        )
