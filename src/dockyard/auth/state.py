"""Everything access control needs while serving, built once at start-up."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from dataclasses import dataclass
from pathlib import Path

from aiohttp import hdrs, web

from dockyard.auth.access import trim
from dockyard.auth.accounts import Accounts, LoginFailed, LoginLocked, Principal
from dockyard.auth.files import WatchedFile
from dockyard.auth.htpasswd import Htpasswd, read_htpasswd
from dockyard.auth.patterns import anonymous_grants
from dockyard.auth.policy import Policy
from dockyard.auth.scopes import Scope, basic_challenge, bearer_challenge, parse_scopes
from dockyard.auth.throttle import LoginThrottle
from dockyard.auth.tokens import (
    IssuedToken,
    KeyFileError,
    SigningKey,
    TokenIssuer,
    TokenVerifier,
    VerificationKey,
    load_jwks,
    load_or_create_signing_key,
    load_public_key,
)
from dockyard.config import Settings
from dockyard.core import Registry
from dockyard.oci import ErrorCode, RegistryError

log = logging.getLogger("dockyard.auth")

TOKEN_PATH = "/auth/token"


@dataclass(frozen=True, slots=True)
class AuthState:
    """The access-control configuration in force, with its files and keys loaded."""

    mode: str
    service: str
    realm: str
    public_url: str
    accounts: Accounts
    issuer: TokenIssuer | None
    verifier: TokenVerifier | None

    @property
    def catalog_open(self) -> bool:
        """Whether anonymous callers may list the (anonymous) repositories."""
        return bool(self.accounts.anonymous.grants.rules)

    def token_realm(self, request: web.Request) -> str:
        """Where clients get tokens: configured, else under the public URL, else under
        the address the client used."""
        if self.realm:
            return self.realm
        base = self.public_url.rstrip("/") or f"{request.scheme}://{request.host}"
        return base + TOKEN_PATH

    def basic_challenge(self) -> dict[str, str]:
        """The ``WWW-Authenticate`` header asking for a user name and password."""
        return {hdrs.WWW_AUTHENTICATE: basic_challenge(self.realm or self.service)}

    def challenge(
        self, request: web.Request, scope: Scope | None = None, error: str | None = None
    ) -> dict[str, str]:
        """The ``WWW-Authenticate`` header of a 401 in this mode."""
        if self.mode == "basic":
            return self.basic_challenge()
        value = bearer_challenge(self.token_realm(request), self.service, scope, error)
        return {hdrs.WWW_AUTHENTICATE: value}

    async def login_basic(self, request: web.Request) -> Principal | None:
        """The principal of the request's Basic credentials; None when it has none.

        Wrong credentials: UNAUTHORIZED (401, with a Basic challenge); too many of
        them: TOOMANYREQUESTS (429, ``Retry-After``). The password is never logged.
        """
        header = request.headers.get(hdrs.AUTHORIZATION, "")
        if header[:6].lower() != "basic ":
            return None
        credentials = decode_basic(header[6:])
        if credentials is None:
            raise RegistryError(
                ErrorCode.UNAUTHORIZED,
                "malformed Basic credentials",
                headers=self.basic_challenge(),
            )
        return await self.login(*credentials, request)

    async def login(self, user: str, password: str, request: web.Request) -> Principal:
        """:meth:`Accounts.login`, with its failures as the client should see them."""
        client = request.remote or ""
        try:
            return await self.accounts.login(user, password, client)
        except LoginLocked as e:
            log.warning("login of %r from %s refused: locked out after failures", user, client)
            raise RegistryError(
                ErrorCode.TOOMANYREQUESTS,
                "too many failed logins for this user from this address; retry later",
                headers={hdrs.RETRY_AFTER: str(max(1, round(e.retry_after)))},
            ) from None
        except LoginFailed:
            log.info("failed login of %r from %s", user, client)
            raise RegistryError(
                ErrorCode.UNAUTHORIZED,
                "wrong user name or password",
                headers=self.basic_challenge(),
            ) from None


def decode_basic(encoded: str) -> tuple[str, str] | None:
    """``user:password`` from the base64 of a Basic ``Authorization``; None if malformed."""
    try:
        raw = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        return None
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # RFC 7617 leaves it open; old clients send Latin-1
    user, sep, password = text.partition(":")
    return (user, password) if sep and user else None


def _trusted_keys(settings: Settings) -> dict[str, list[VerificationKey]]:
    trusted = {}
    for entry in settings.auth.trusted_issuers:
        path = Path(entry.public_key or entry.jwks)
        try:
            if entry.public_key:
                trusted[entry.issuer] = load_public_key(path)
            else:
                trusted[entry.issuer] = load_jwks(path)
        except OSError as e:
            raise KeyFileError(f"trusted issuer {entry.issuer!r}: {path}: {e.strerror}") from None
    return trusted


async def build_state(settings: Settings, registry: Registry) -> AuthState:
    """Load the user store, policy and keys; raises ValueError naming a bad file."""
    auth = settings.auth
    htpasswd = WatchedFile(settings.htpasswd_path, Htpasswd.parse, missing=Htpasswd)
    users = await htpasswd.load()
    for line in users.skipped:
        log.warning("%s (only bcrypt hashes are accepted: htpasswd -B)", line)
    if not users.users:
        log.warning("no users in %s: add one with `dockyard user add`", settings.htpasswd_path)
    policy = None
    if auth.policy:
        policy = WatchedFile(Path(auth.policy), Policy.parse)
        await policy.load()
    accounts = Accounts(
        htpasswd,
        policy,
        registry.robots,
        anonymous_grants(auth.anonymous_pull),
        LoginThrottle(auth.login_attempts, auth.login_lockout),
    )
    issuer = verifier = None
    if auth.mode == "token":
        key = await asyncio.to_thread(load_or_create_signing_key, settings.signing_key_path)
        trusted = await asyncio.to_thread(_trusted_keys, settings)
        issuer = TokenIssuer(key, auth.issuer, auth.service, auth.token_ttl)
        verifier = TokenVerifier(auth.service, auth.issuer, key, trusted)
    return AuthState(
        mode=auth.mode,
        service=auth.service,
        realm=auth.realm,
        public_url=settings.server.public_url,
        accounts=accounts,
        issuer=issuer,
        verifier=verifier,
    )


async def mint_token(
    settings: Settings, registry: Registry, subject: str, scopes: list[str], ttl: float | None
) -> IssuedToken:
    """A token for ``subject`` (a user, ``robot$name``, or ``""`` for anonymous) with
    ``scopes`` trimmed to what it may have: ``dockyard token``. ValueError when the
    subject is no active account."""
    auth = settings.auth.model_copy(update={"mode": "token"})
    if ttl is not None:
        auth = auth.model_copy(update={"token_ttl": ttl})
    state = await build_state(settings.model_copy(update={"auth": auth}), registry)
    principal = await state.accounts.principal(subject)
    if principal is None:
        raise ValueError(f"{subject!r} is neither a user of the htpasswd file nor an active robot")
    granted = trim(principal, parse_scopes(scopes), catalog_open=state.catalog_open)
    assert state.issuer is not None
    return state.issuer.issue(principal.name, granted, principal.expires_at)


def preflight(settings: Settings, *, create_key: bool = True) -> None:
    """Check the access-control files before serving; ValueError naming the problem.

    With ``create_key``, a missing signing key is generated now, so that workers
    started together share one; without it, only an existing key is checked.
    """
    auth = settings.auth
    if auth.mode == "none":
        return
    anonymous_grants(auth.anonymous_pull)
    read_htpasswd(settings.htpasswd_path)
    if auth.policy:
        path = Path(auth.policy)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ValueError(f"[auth] policy: cannot read {path}: {e.strerror}") from None
        Policy.parse(data, path)
    if auth.mode == "token":
        key = settings.signing_key_path
        if create_key:
            load_or_create_signing_key(key)
        elif key.exists():
            SigningKey.from_pem(key.read_bytes(), key)
        _trusted_keys(settings)
