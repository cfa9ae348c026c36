"""Access control: accounts, Docker token auth, per-repository permissions.

``setup(app, settings)`` is the only entry point. With ``[auth] mode = "none"`` it does
nothing at all; otherwise it loads the user store, policy and keys at start-up, guards
``/v2/`` with ``dockyard.auth.middleware.guard`` and, in token mode, serves
``/auth/token``. Modules:

- ``patterns``: repository patterns, actions, rules and grants;
- ``htpasswd``, ``policy``, ``robots``, ``accounts``: who exists and what they may do;
- ``throttle``: failed-login lockout;
- ``scopes``, ``tokens``: the token spec's scopes and challenges, JWT signing and checks;
- ``access``, ``middleware``, ``token_endpoint``: the HTTP side.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from dockyard.api import REGISTRY
from dockyard.auth import middleware as _middleware
from dockyard.auth import token_endpoint as _token_endpoint
from dockyard.auth.accounts import Accounts, LoginFailed, LoginLocked, Principal
from dockyard.auth.htpasswd import (
    Htpasswd,
    HtpasswdError,
    hash_password,
    read_htpasswd,
    validate_user,
    write_htpasswd,
)
from dockyard.auth.middleware import AUTH
from dockyard.auth.patterns import PatternError
from dockyard.auth.policy import Policy, PolicyError
from dockyard.auth.robots import ROBOT_PREFIX, new_robot, robot_username
from dockyard.auth.scopes import Scope, parse_scopes
from dockyard.auth.state import TOKEN_PATH as _TOKEN_PATH
from dockyard.auth.state import AuthState, build_state, mint_token, preflight
from dockyard.auth.tokens import IssuedToken, KeyFileError, load_or_create_signing_key
from dockyard.config import Settings

__all__ = [
    "AUTH",
    "ROBOT_PREFIX",
    "Accounts",
    "AuthState",
    "Htpasswd",
    "HtpasswdError",
    "IssuedToken",
    "KeyFileError",
    "LoginFailed",
    "LoginLocked",
    "PatternError",
    "Policy",
    "PolicyError",
    "Principal",
    "Scope",
    "build_state",
    "hash_password",
    "load_or_create_signing_key",
    "mint_token",
    "new_robot",
    "parse_scopes",
    "preflight",
    "read_htpasswd",
    "robot_username",
    "setup",
    "validate_user",
    "write_htpasswd",
]


def setup(app: web.Application, settings: Settings) -> None:
    """Guard the registry as ``settings.auth`` says; nothing at all in mode ``none``.

    Call after the registry's cleanup context is added: robots live in its database.
    """
    if settings.auth.mode == "none":
        return

    async def auth_ctx(app: web.Application) -> AsyncIterator[None]:
        app[AUTH] = await build_state(settings, app[REGISTRY])
        yield

    app.cleanup_ctx.append(auth_ctx)
    app.middlewares.append(_middleware.guard)
    if settings.auth.mode == "token":
        app.router.add_get(_TOKEN_PATH, _token_endpoint.get_token)
        app.router.add_post(_TOKEN_PATH, _token_endpoint.post_token)
