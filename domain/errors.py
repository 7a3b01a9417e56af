"""Errors the user can fix. Every input the service refuses (data, options, a model spec, a
policy) raises a `UserError` whose message says what to change; the service treats the class
as permanent: a job that fails with one is failed at once, its retries would fail the same way.
"""

from domain.messages import error_text


class UserError(ValueError):
    """Something the user gave cannot work as given."""


# What the service layer raises; each carries the HTTP status the API answers with (the
# API renders them in api/errors.py; the worker classes Conflict as permanent).
class ServiceError(Exception):
    """`code` names the refusal in domain/messages.py's catalogue; `params` fill its text and
    travel in the API's answer beside it (the record, line and field of a bad upload)."""

    status_code = 400

    def __init__(self, code: str, /, **params):
        self.code, self.params = code, params
        self.detail = error_text("en", code, params)
        super().__init__(self.detail)

    def text(self, lang: str) -> str:
        return error_text(lang, self.code, self.params)

    def __reduce__(self):
        # Rebuilt from its code and parameters: by default pickle would pass the English
        # text back as the code (a process boundary must not turn a refusal into a KeyError).
        return _rebuild, (type(self), self.code, self.params)


def _rebuild(cls: type[ServiceError], code: str, params: dict) -> ServiceError:
    error = cls.__new__(cls)
    ServiceError.__init__(error, code, **params)
    return error


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

    def __init__(self, limit: int, retry_after: int):
        super().__init__("rate_limited", limit=limit, retry_after=retry_after)

    @property
    def retry_after(self) -> int:
        return self.params["retry_after"]
