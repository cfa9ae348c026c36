"""Storage lifecycle: garbage collection, retention, integrity checks, read-only mode, quotas.

``setup(app, settings, registry)`` is the only entry point into the server: it installs
read-only maintenance mode and the GC schedule when configured. The CLI calls the
functions below directly. Modules, each small:

- ``mark``: which manifests are reachable from tags (children, referrers);
- ``collect``: the GC run (stale links, unused blobs, expired uploads);
- ``uploads``: upload expiry;
- ``retention``: ``[[retention]]`` rules;
- ``fsck``: re-hashing and metadata/storage cross-checks, quarantine;
- ``quota``: usage by namespace;
- ``maintenance``, ``schedule``: the server side.

The rules themselves (what may be deleted, safely, while pushes go on) live in the core:
:mod:`dockyard.core.lifecycle`.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from dockyard.config import Settings
from dockyard.core import Registry
from dockyard.gc.collect import GcReport, Progress, collect_garbage
from dockyard.gc.fsck import Broken, FsckReport, Problem, check_integrity
from dockyard.gc.maintenance import MAINTENANCE, read_only
from dockyard.gc.mark import Marked, mark
from dockyard.gc.quota import Usage, namespace_usage
from dockyard.gc.retention import Deletion, RetentionReport, apply_retention
from dockyard.gc.schedule import run_once, schedule
from dockyard.gc.uploads import ExpiredUpload, expire_uploads

__all__ = [
    "MAINTENANCE",
    "Broken",
    "Deletion",
    "ExpiredUpload",
    "FsckReport",
    "GcReport",
    "Marked",
    "Problem",
    "Progress",
    "RetentionReport",
    "Usage",
    "apply_retention",
    "check_integrity",
    "collect_garbage",
    "expire_uploads",
    "mark",
    "namespace_usage",
    "read_only",
    "run_once",
    "schedule",
    "setup",
]


def setup(app: web.Application, settings: Settings, registry: Callable[[], Registry]) -> None:
    """Read-only mode when ``[server] read_only``; else GC on a schedule when
    ``[gc] interval`` is set. ``registry`` gives the running registry core."""
    if settings.server.read_only:
        app.middlewares.append(read_only)
        return
    if settings.gc.interval:
        schedule(app, settings, registry)
