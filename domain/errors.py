"""Errors the user can fix. Every input the service refuses (data, options, a model spec, a
policy) raises a `UserError` whose message says what to change; the service treats the class
as permanent: a job that fails with one is failed at once, its retries would fail the same way.
"""


class UserError(ValueError):
    """Something the user gave cannot work as given."""


# What the service layer raises; each carries the HTTP status the API answers with (the
# API renders them in api/errors.py; the worker classes Conflict as permanent).
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


class RateLimited(ServiceError):
    status_code = 429

    def __init__(self, detail: str, retry_after: int):
        super().__init__(detail, retry_after=retry_after)
        self.retry_after = retry_after
