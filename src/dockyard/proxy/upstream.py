"""One upstream registry as the cache sees it: HTTP with auth, bounded waits, back-off.

Auth follows the Docker token flow: a request answered ``401`` with
``WWW-Authenticate: Bearer realm=...,service=...,scope=...`` is retried with a token
from the realm (anonymous, or with the configured credentials as basic auth); a
``Basic`` challenge is answered with the credentials directly. Tokens are kept per
scope and sent up front until shortly before they expire, so a warm cache costs the
upstream's token server nothing.

Failures are counted per upstream: after :data:`FAILURES_BEFORE_BACKOFF` in a row (a
refused connection, a timeout, a 5xx or a 429) the upstream is skipped for ``backoff``
seconds, so a hundred nodes pulling during an outage do not each wait out a timeout.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlencode, urlsplit

import aiohttp

from dockyard.config import UpstreamSettings

FAILURES_BEFORE_BACKOFF = 3
# A token is not reused in its last seconds: it could expire on the way.
_TOKEN_MARGIN = 10.0
_DEFAULT_TOKEN_LIFETIME = 60.0
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')
_DOCKER_HUB_HOSTS = frozenset({"registry-1.docker.io", "docker.io", "index.docker.io"})


class UpstreamError(Exception):
    """The upstream cannot answer now: unreachable, too slow, 5xx, 429 or backing off."""


class UpstreamNotFound(Exception):
    """The upstream answered 404: it has no such manifest, blob or repository."""


class UpstreamDenied(Exception):
    """The upstream refused our credentials (401/403 after the token dance)."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """The upstream's last rate-limit headers (Docker Hub: ``ratelimit-limit``/``-remaining``)."""

    limit: int | None
    remaining: int | None


def _count(header: str | None) -> int | None:
    # Docker Hub sends "100;w=21600": the count, then the window.
    if not header:
        return None
    head = header.split(";", 1)[0].strip()
    return int(head) if head.isdigit() else None


class Upstream:
    """HTTP access to one upstream registry (see the module docstring)."""

    def __init__(self, settings: UpstreamSettings, session: aiohttp.ClientSession) -> None:
        self.settings = settings
        self.name = settings.name
        self.base = settings.url.rstrip("/")
        self.host = urlsplit(self.base).netloc
        if settings.docker_hub == "auto":
            self.is_docker_hub = self.host in _DOCKER_HUB_HOSTS
        else:
            self.is_docker_hub = settings.docker_hub == "yes"
        self._session = session
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=settings.connect_timeout,
            sock_connect=settings.connect_timeout,
            sock_read=settings.read_timeout,
        )
        # The Authorization header of basic auth, for Basic challenges and token servers.
        self._basic: dict[str, str] = {}
        if settings.username:
            pair = f"{settings.username}:{settings.password}".encode()
            self._basic = {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        self._tokens: dict[str, tuple[str, float]] = {}
        self._failures = 0
        self._unavailable_until = 0.0
        self.rate_limit = RateLimit(None, None)
        self.token_fetches = 0

    @property
    def available(self) -> bool:
        """False while backing off after repeated failures."""
        return time.monotonic() >= self._unavailable_until

    def _failed(self, why: str) -> UpstreamError:
        self._failures += 1
        if self._failures >= FAILURES_BEFORE_BACKOFF:
            self._unavailable_until = time.monotonic() + self.settings.backoff
        return UpstreamError(f"upstream {self.name!r} ({self.base}): {why}")

    def _succeeded(self) -> None:
        self._failures = 0
        self._unavailable_until = 0.0

    @asynccontextmanager
    async def open(
        self,
        method: Literal["GET", "HEAD"],
        repository: str,
        path: str,
        accept: str | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send ``method /v2/<repository>/<path>`` and yield the 200 response.

        Raises :class:`UpstreamNotFound` on 404, :class:`UpstreamDenied` when auth fails,
        :class:`UpstreamError` when the upstream is down, slow, failing or backing off.
        """
        if not self.available:
            raise UpstreamError(
                f"upstream {self.name!r} ({self.base}) is backing off after repeated failures"
            )
        url = f"{self.base}/v2/{repository}/{path}"
        scope = f"repository:{repository}:pull"
        headers = {"Accept": accept} if accept else {}
        try:
            response = await self._send(method, url, headers, scope)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise self._failed(f"{type(e).__name__}: {e}") from None
        try:
            self._note_rate_limit(response)
            if response.status == 404:
                self._succeeded()
                raise UpstreamNotFound(f"{self.name}: {repository}/{path} not found upstream")
            if response.status in (401, 403):
                self._succeeded()
                raise UpstreamDenied(
                    f"upstream {self.name!r} refused access to {repository} ({response.status})"
                )
            if response.status == 429 or response.status >= 500:
                raise self._failed(f"answered {response.status} for {repository}/{path}")
            if response.status != 200:
                raise self._failed(f"unexpected status {response.status} for {repository}/{path}")
            self._succeeded()
            yield response
        finally:
            response.release()

    async def _send(
        self, method: str, url: str, headers: dict[str, str], scope: str
    ) -> aiohttp.ClientResponse:
        token = self._tokens.get(scope)
        if token is not None and token[1] > time.monotonic():
            headers = {**headers, "Authorization": f"Bearer {token[0]}"}
        response = await self._session.request(
            method, url, headers=headers, timeout=self._timeout, allow_redirects=True
        )
        if response.status != 401:
            return response
        challenge = response.headers.get("WWW-Authenticate", "")
        response.release()
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() == "bearer":
            value = await self._token(dict(_CHALLENGE.findall(params)), scope)
            auth_headers = {**headers, "Authorization": f"Bearer {value}"}
            return await self._session.request(
                method, url, headers=auth_headers, timeout=self._timeout
            )
        if scheme.lower() == "basic" and self._basic:
            return await self._session.request(
                method, url, headers={**headers, **self._basic}, timeout=self._timeout
            )
        return await self._session.request(method, url, headers=headers, timeout=self._timeout)

    async def _token(self, challenge: dict[str, str], scope: str) -> str:
        realm = challenge.get("realm")
        if not realm:
            raise UpstreamDenied(f"upstream {self.name!r} sent a Bearer challenge without realm")
        query = {"scope": challenge.get("scope", scope)}
        if "service" in challenge:
            query["service"] = challenge["service"]
        started = time.monotonic()
        async with self._session.get(
            f"{realm}?{urlencode(query)}", headers=self._basic, timeout=self._timeout
        ) as response:
            if response.status != 200:
                raise UpstreamDenied(
                    f"upstream {self.name!r}: token server {realm} answered {response.status}"
                )
            body = await response.json(content_type=None)
        self.token_fetches += 1
        value = body.get("token") or body.get("access_token")
        if not isinstance(value, str) or not value:
            raise UpstreamDenied(f"upstream {self.name!r}: token server {realm} sent no token")
        lifetime = body.get("expires_in")
        seconds = float(lifetime) if isinstance(lifetime, int | float) else _DEFAULT_TOKEN_LIFETIME
        self._tokens[scope] = (value, started + seconds - _TOKEN_MARGIN)
        return value

    def _note_rate_limit(self, response: aiohttp.ClientResponse) -> None:
        limit = _count(response.headers.get("ratelimit-limit"))
        remaining = _count(response.headers.get("ratelimit-remaining"))
        if limit is not None or remaining is not None:
            self.rate_limit = RateLimit(limit, remaining)
