"""Quota accounting: bytes per top-level namespace, each blob counted once there."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.core import Registry


@dataclass(frozen=True, slots=True)
class Usage:
    """A namespace's usage and, when it has one, its quota."""

    namespace: str
    size: int
    blobs: int
    limit: int | None

    @property
    def over(self) -> bool:
        return self.limit is not None and self.size > self.limit


async def namespace_usage(registry: Registry) -> list[Usage]:
    """Usage of every namespace that holds blobs or has a quota, by name."""
    usage = await registry.lifecycle.usage()
    quotas = registry.lifecycle.quotas
    names = sorted(set(usage) | set(quotas))
    return [Usage(name, *usage.get(name, (0, 0)), quotas.get(name)) for name in names]
