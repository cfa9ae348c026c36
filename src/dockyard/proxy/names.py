"""Which upstream serves a repository, and under which names, locally and upstream.

With ``prefix = "hub/"`` the local ``hub/library/alpine`` is ``library/alpine`` upstream.
A Docker Hub upstream also takes the short names of official images: ``hub/alpine`` is
``library/alpine`` upstream and is stored locally as ``hub/library/alpine``, so both
names share one cached copy. An upstream with an empty prefix is a mirror: it serves
every repository no other prefix claims, under the upstream's own names.

containerd, mirroring several registries through one Dockyard, names the registry it
means in the ``ns`` query parameter (``?ns=ghcr.io``); :meth:`Router.for_namespace`
finds the upstream whose URL has that host (``docker.io`` means Docker Hub).
"""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.proxy.upstream import Upstream

_DOCKER_HUB_NAMESPACES = ("docker.io", "registry-1.docker.io", "index.docker.io")


@dataclass(frozen=True, slots=True)
class Route:
    """A cached repository: its upstream, its local name and its name upstream."""

    upstream: Upstream
    local: str
    remote: str


class Router:
    """Maps repository names to upstreams by prefix (see the module docstring)."""

    def __init__(self, upstreams: list[Upstream]) -> None:
        self.upstreams = upstreams
        # Longest first, though prefixes are single path components and cannot nest.
        self._prefixed = sorted(
            (u for u in upstreams if u.settings.prefix),
            key=lambda u: -len(u.settings.prefix),
        )
        self._prefixes = tuple(u.settings.prefix for u in self._prefixed)
        self._mirror = next((u for u in upstreams if not u.settings.prefix), None)
        self._by_host: dict[str, Upstream] = {}
        for u in upstreams:
            self._by_host.setdefault(u.host, u)
            if u.is_docker_hub:
                for alias in _DOCKER_HUB_NAMESPACES:
                    self._by_host.setdefault(alias, u)

    def covers(self, repository: str) -> bool:
        """Whether ``repository`` is a cached one: one prefix check, no I/O."""
        return self._mirror is not None or repository.startswith(self._prefixes)

    def route(self, repository: str) -> Route:
        """The route of a covered repository (call :meth:`covers` first)."""
        upstream = self._mirror
        remote = repository
        for candidate in self._prefixed:
            if repository.startswith(candidate.settings.prefix):
                upstream = candidate
                remote = repository[len(candidate.settings.prefix) :]
                break
        assert upstream is not None, f"{repository} is not a cached repository"
        if upstream.is_docker_hub and "/" not in remote:
            remote = f"library/{remote}"
        return Route(upstream, upstream.settings.prefix + remote, remote)

    def for_namespace(self, namespace: str) -> Upstream | None:
        """The upstream containerd means by ``?ns=<namespace>``, if one is configured."""
        return self._by_host.get(namespace.lower())
