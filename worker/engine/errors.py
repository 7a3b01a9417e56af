"""The engine's own user errors (see `domain.errors.UserError`: never retried)."""

from domain.errors import UserError


class OptionError(UserError):
    """An option outside what the engine accepts (an unknown method, a negative lr, ...)."""
