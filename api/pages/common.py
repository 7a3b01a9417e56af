"""What every page shares: its templates, the signed-in user from the session cookie, the CSRF
check of its forms, and the redirect to the login form."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from api.pages import session as cookies
from api.pages.messages import LANGUAGES, MESSAGES, STATE_NAMES
from domain.errors import Forbidden, Unauthorized
from domain.keys.service import Principal, authenticate

Lang = Annotated[Literal[LANGUAGES], Query()]  # type: ignore[valid-type]
STAFF = ("operator", "admin")


@cache
def _templates() -> Environment:
    folder = Path(__file__).parent / "templates"
    return Environment(loader=FileSystemLoader(folder), autoescape=select_autoescape(["j2"]))


@dataclass(frozen=True)
class User:
    principal: Principal
    sealed: str  # the session cookie
    csrf: str  # the token every form of this session carries

    @property
    def role(self) -> str:
        return self.principal.role


# The page each template is (a GET route), for its language link: a page rendered as the
# answer to a form (approve, verify, cancel…) sits at a POST-only URL, where "?lang=" was a 405.
HOME = {"audit.html.j2": "/ui/audit", "operations.html.j2": "/ui/operations",
        "models.html.j2": "/ui/models", "login.html.j2": "/ui/login",
        "tickets.html.j2": "/ui/tickets", "submit.html.j2": "/ui/submit"}  # fmt: skip


def page(name: str, lang: str, user: User | None, status: int = 200, *, here: str | None = None,
         **context) -> HTMLResponse:  # fmt: skip
    """`here`: the page's own GET URL, for its language link (default: the template's HOME)."""
    here = here or HOME.get(name)
    html = _templates().get_template(name).render(
        t=MESSAGES[lang], states=STATE_NAMES[lang], lang=lang, signed_in=user is not None,
        role=user.role if user else None, csrf=user.csrf if user else "", here=here or "",
        **context,
    )  # fmt: skip
    return HTMLResponse(html, status_code=status)


def signed_in(request: Request, session, settings) -> User | None:
    """The session's user, or None (no cookie, a forged or expired one, or a revoked key)."""
    secret = settings.secret_key.get_secret_value()
    sealed = request.cookies.get(cookies.COOKIE)
    key = cookies.unseal(secret, sealed)
    if key is None or sealed is None:
        return None
    try:
        principal = authenticate(session, secret, key)
    except Unauthorized:
        return None
    return User(principal, sealed, cookies.csrf_token(secret, sealed))


def to_login(lang: str) -> RedirectResponse:
    return RedirectResponse(f"/ui/login?lang={lang}", status_code=303)


# What a form did, said on the page it leads back to (`?done=`): post, redirect, get, so a
# reload shows the page again instead of sending the form twice.
Done = Literal["approved", "rejected", "rolled_back", "cancelled"] | None


def after_form(path: str, lang: str, done: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?lang={lang}&done={done}", status_code=303)


def done_notice(lang: str, done: str | None) -> str | None:
    return MESSAGES[lang][done] if done else None


def check_form(settings, user: User, csrf: str, roles: tuple[str, ...] | None = None) -> None:
    """A form's CSRF token must be the session's; `roles`: who may send this form at all."""
    if not cookies.csrf_ok(settings.secret_key.get_secret_value(), user.sealed, csrf):
        raise Forbidden("bad_csrf")
    if roles is not None and user.role not in roles:
        raise Forbidden("role_may_not", role=user.role)


def require_role(user: User, roles: tuple[str, ...]) -> None:
    if user.role not in roles:
        raise Forbidden("role_may_not_open", role=user.role)
