"""Errors the user can fix. Every input the service refuses (data, options, a model spec, a
policy) raises a `UserError` whose message says what to change; the service treats the class
as permanent: a job that fails with one is failed at once, its retries would fail the same way.
"""


class UserError(ValueError):
    """Something the user gave cannot work as given."""
