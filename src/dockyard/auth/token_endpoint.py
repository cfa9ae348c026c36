"""``/auth/token``: Dockyard's own token server (Docker registry token authentication).

- ``GET /auth/token?service=...&scope=...`` with optional Basic credentials (Docker,
  Podman, skopeo, oras): ``{"token", "access_token", "expires_in", "issued_at"}``.
- ``POST /auth/token`` with an OAuth2 password grant form (containerd):
  ``{"access_token", "token", "expires_in", "issued_at", "scope"}``.

Without credentials the token grants what anonymous callers may do (refused with 401
when they may do nothing). Requested actions the caller may not have are left out of
the token, not refused: the registry then denies what is missing.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from multidict import MultiDictProxy

from dockyard.auth.access import trim
from dockyard.auth.accounts import Principal
from dockyard.auth.middleware import AUTH
from dockyard.auth.scopes import parse_scopes
from dockyard.auth.state import AuthState
from dockyard.auth.tokens import IssuedToken
from dockyard.oci import ErrorCode, RegistryError

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _check_service(state: AuthState, service: str | None) -> None:
    if service and service != state.service:
        raise RegistryError(
            ErrorCode.DENIED,
            f"this token server issues tokens for service {state.service!r} only",
            status=400,
        )


async def _issue(state: AuthState, principal: Principal | None, scopes: list[str]) -> IssuedToken:
    if principal is None:
        if not state.catalog_open:
            raise RegistryError(
                ErrorCode.UNAUTHORIZED,
                "credentials are required",
                headers=state.basic_challenge(),
            )
        principal = state.accounts.anonymous
    granted = trim(principal, parse_scopes(scopes), catalog_open=state.catalog_open)
    assert state.issuer is not None
    not_after: datetime | None = principal.expires_at
    return state.issuer.issue(principal.name, granted, not_after)


async def get_token(request: web.Request) -> web.Response:
    """GET: a token for the Basic credentials (or anonymous) and the requested scopes."""
    state = request.app[AUTH]
    _check_service(state, request.query.get("service"))
    principal = await state.login_basic(request)
    issued = await _issue(state, principal, request.query.getall("scope", []))
    return web.json_response(
        {
            "token": issued.token,
            "access_token": issued.token,
            "expires_in": issued.expires_in,
            "issued_at": issued.issued_at,
        },
        headers=_NO_STORE,
    )


async def post_token(request: web.Request) -> web.Response:
    """POST: the OAuth2 password grant (RFC 6749 section 4.3), as containerd sends it."""
    state = request.app[AUTH]
    form = await request.post()
    _check_service(state, _field(form, "service"))
    grant_type = _field(form, "grant_type")
    if grant_type != "password":
        raise RegistryError(
            ErrorCode.UNSUPPORTED,
            f"grant_type {grant_type!r} is not supported; use password",
            status=400,
        )
    username, password = _field(form, "username"), _field(form, "password")
    if username is None or password is None:
        principal = await state.login_basic(request)
    else:
        principal = await state.login(username, password, request)
    issued = await _issue(state, principal, [_field(form, "scope") or ""])
    return web.json_response(
        {
            "access_token": issued.token,
            "token": issued.token,
            "expires_in": issued.expires_in,
            "issued_at": issued.issued_at,
            "scope": " ".join(str(s) for s in issued.granted),
        },
        headers=_NO_STORE,
    )


def _field(form: MultiDictProxy[str | bytes | bytearray | web.FileField], name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None
