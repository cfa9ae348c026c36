"""The gate in front of ``/v2/``: what each request needs, who asks, yes or no.

Every request is mapped to the scope it needs, on the repository name the router
matched, the very string the handler hands to the core:

- ``GET /v2/``: any authenticated caller (how ``docker login`` checks credentials);
- ``/v2/_catalog``: ``registry:catalog:*``; the listing shows only what the caller may pull;
- ``/v2/<name>/...``: ``repository:<name>:pull`` for GET and HEAD, ``pull,push`` for POST,
  PUT, PATCH and for cancelling an upload, ``delete`` for other DELETEs.

The name is validated before any rule sees it, with the same grammar the core uses,
so ``a/../b``, encoded slashes or capitals can never match another repository's rule.

No credentials, or bad ones: 401 UNAUTHORIZED with the mode's challenge. Credentials
that do not allow the request: 403 DENIED; with a token, the 403 carries a challenge
(``error="insufficient_scope"``) naming the scope to ask for. An anonymous token that
falls short gets 401 UNAUTHORIZED, since logging in may help.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import hdrs, web

from dockyard.api import ACCESS
from dockyard.auth.access import GrantsAccess, TokenAccess
from dockyard.auth.scopes import CATALOG, Scope
from dockyard.auth.state import AuthState
from dockyard.auth.tokens import InvalidToken, VerifiedToken
from dockyard.core import Access, Action
from dockyard.oci import ErrorCode, InvalidName, RegistryError, validate_name

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
AUTH = web.AppKey("auth", AuthState)

_READ = frozenset({hdrs.METH_GET, hdrs.METH_HEAD})
_WRITE = frozenset({hdrs.METH_POST, hdrs.METH_PUT, hdrs.METH_PATCH})


@dataclass(frozen=True, slots=True)
class Need:
    """What a request needs: ``kind`` is base, catalog or repository."""

    kind: str
    repository: str = ""
    actions: tuple[Action, ...] = ()

    @property
    def scope(self) -> Scope | None:
        if self.kind == "catalog":
            return Scope(*CATALOG, ("*",))
        if self.kind == "repository" and self.repository:
            return Scope("repository", self.repository, self.actions)
        return None


def required(request: web.Request) -> Need | None:
    """What ``request`` needs; None for paths outside the guarded API."""
    path = request.path
    if path in ("/v2", "/v2/"):
        return Need("base")
    if not path.startswith("/v2/"):
        return None
    info = request.match_info
    if info.http_exception is not None:
        return None  # no such endpoint: the 404 or 405 reveals nothing
    if path == "/v2/_catalog":
        return Need("catalog")
    raw = info.get("name")
    if raw is None:
        return None
    actions: tuple[Action, ...]
    if request.method in _READ:
        actions = ("pull",)
    elif request.method in _WRITE or "uuid" in info:
        # Cancelling one's own upload session is part of pushing; it deletes nothing stored.
        actions = ("pull", "push")
    else:
        actions = ("delete",)
    return Need("repository", raw, actions)


@dataclass(frozen=True, slots=True)
class _Caller:
    access: Access
    authenticated: bool
    token: VerifiedToken | None = None


async def _identify(state: AuthState, request: web.Request, need: Need) -> _Caller:
    if state.mode == "basic":
        principal = await state.login_basic(request)
        if principal is None:
            return _Caller(GrantsAccess(state.accounts.anonymous.grants), authenticated=False)
        return _Caller(GrantsAccess(principal.grants), authenticated=True)
    header = request.headers.get(hdrs.AUTHORIZATION, "")
    if header[:7].lower() != "bearer ":
        return _Caller(GrantsAccess(state.accounts.anonymous.grants), authenticated=False)
    assert state.verifier is not None
    try:
        token = state.verifier.verify(header[7:].strip())
    except InvalidToken as e:
        raise RegistryError(
            ErrorCode.UNAUTHORIZED,
            str(e),
            headers=state.challenge(request, need.scope, "invalid_token"),
        ) from None
    return _Caller(TokenAccess(token), authenticated=True, token=token)


async def _catalog_access(state: AuthState, request: web.Request, caller: _Caller) -> Access:
    token = caller.token
    if token is None:
        if caller.authenticated or state.catalog_open:
            return caller.access
        raise _unauthorized(state, request, Need("catalog"))
    if not token.allows(*CATALOG, "*"):
        raise _denied(state, request, Need("catalog"), caller)
    if not token.own:
        return caller.access  # another issuer's token: only its access claim counts
    # Dockyard's own token for the catalog lists what its subject may pull, as the
    # token endpoint would grant it now.
    principal = await state.accounts.principal(token.subject)
    return GrantsAccess((principal or state.accounts.anonymous).grants)


def _unauthorized(state: AuthState, request: web.Request, need: Need) -> RegistryError:
    return RegistryError(
        ErrorCode.UNAUTHORIZED,
        detail=_detail(need),
        headers=state.challenge(request, need.scope),
    )


def _denied(state: AuthState, request: web.Request, need: Need, caller: _Caller) -> RegistryError:
    if caller.token is None:
        return RegistryError(ErrorCode.DENIED, detail=_detail(need))
    if not caller.token.subject:
        # An anonymous token: logging in may help, so ask for it as if there were none.
        return _unauthorized(state, request, need)
    # RFC 6750 section 3.1: a token without the scope gets 403 and a challenge naming
    # the scope, which a client may fetch a new token for (oras-py does so on a 403).
    return RegistryError(
        ErrorCode.DENIED,
        detail=_detail(need),
        headers=state.challenge(request, need.scope, "insufficient_scope"),
    )


def _detail(need: Need) -> list[dict[str, str]] | None:
    scope = need.scope
    if scope is None:
        return None
    return [{"Type": scope.type, "Name": scope.name, "Action": a} for a in scope.actions]


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Let the request through with the caller's Access, or raise 401/403/429."""
    need = required(request)
    if need is None:
        return await handler(request)
    state = request.app[AUTH]
    caller = await _identify(state, request, need)
    if need.kind == "base":
        if not caller.authenticated:
            raise _unauthorized(state, request, need)
        return await handler(request)
    if need.kind == "catalog":
        request[ACCESS] = await _catalog_access(state, request, caller)
        return await handler(request)
    try:
        name = validate_name(need.repository)
    except InvalidName as e:
        if not caller.authenticated:
            raise _unauthorized(state, request, Need("base")) from None
        raise RegistryError(ErrorCode.NAME_INVALID, str(e)) from None
    need = Need("repository", name, need.actions)
    for action in need.actions:
        if not await caller.access.can(name, action):
            if not caller.authenticated:
                raise _unauthorized(state, request, need)
            raise _denied(state, request, need, caller)
    request[ACCESS] = caller.access
    return await handler(request)
