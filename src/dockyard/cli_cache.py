"""``dockyard cache status``: each upstream as seen from here, and what the cache holds.

The serving process keeps its back-off state and the last rate-limit headers in memory
(exported as ``dockyard_cache_*`` metrics); this command cannot read them, so it asks
each upstream itself, with the upstream's own bounded timeouts: ``GET /v2/`` for
reachability, and a ``HEAD`` of one manifest (which Docker Hub answers with its
``ratelimit-*`` headers without counting it) for the rate limit. Cached sizes come from
the metadata database, as recorded by the server (pull times are flushed every few
seconds).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import aiohttp
import typer

from dockyard.config import Settings, UpstreamSettings
from dockyard.core import Registry
from dockyard.metadata import CachePulls
from dockyard.proxy.upstream import (
    FAILURES_BEFORE_BACKOFF,
    Upstream,
    UpstreamDenied,
    UpstreamError,
    UpstreamNotFound,
)

cache_app = typer.Typer(help="The pull-through cache ([[upstreams]]).", no_args_is_help=True)

# Docker's documented repository for reading the rate limit: HEAD costs no pull.
DOCKER_HUB_PROBE = "ratelimitpreview/test"

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML configuration file.", envvar="DOCKYARD_CONFIG"),
]


def register(app: typer.Typer) -> None:
    """Add ``dockyard cache`` to the ``dockyard`` command."""
    app.add_typer(cache_app, name="cache")


@dataclass(frozen=True, slots=True)
class UpstreamStatus:
    """One upstream's line in ``dockyard cache status``."""

    name: str
    url: str
    prefix: str
    reachable: bool
    probe: str  # "HTTP 200 in 12 ms", or why the probe failed
    ratelimit_limit: int | None
    ratelimit_remaining: int | None
    ratelimit_probe: str | None  # the repository HEADed for the rate limit, and the outcome
    cached_bytes: int
    max_size: int | None


async def _probe(upstream: Upstream, session: aiohttp.ClientSession) -> tuple[bool, str]:
    """``GET /v2/``: any HTTP answer below 500 (401 included) means it is up."""
    settings = upstream.settings
    timeout = aiohttp.ClientTimeout(
        total=settings.connect_timeout + settings.read_timeout,
        sock_connect=settings.connect_timeout,
        sock_read=settings.read_timeout,
    )
    started = time.monotonic()
    try:
        async with session.get(f"{upstream.base}/v2/", timeout=timeout) as response:
            status = response.status
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        return False, f"{type(e).__name__}: {e}".rstrip(": ")
    elapsed = (time.monotonic() - started) * 1000
    return status < 500 and status != 429, f"HTTP {status} in {elapsed:.0f} ms"


async def _rate_limit(upstream: Upstream, repository: str) -> str:
    """HEAD ``repository:latest`` through the token dance; the upstream notes the headers."""
    try:
        async with upstream.open("HEAD", repository, "manifests/latest"):
            return f"{repository}: found"
    except UpstreamNotFound:
        return f"{repository}: not found"
    except (UpstreamDenied, UpstreamError) as e:
        return f"{repository}: {e}"


async def _status(
    settings: Settings, repository: str | None, registry: Registry
) -> list[UpstreamStatus]:
    rows = CachePulls(registry.meta)
    sizes = {u.name: await rows.total_size(u.name) for u in settings.upstreams}
    async with aiohttp.ClientSession(auto_decompress=False) as session:

        async def one(config: UpstreamSettings) -> UpstreamStatus:
            upstream = Upstream(config, session)
            reachable, probe = await _probe(upstream, session)
            target = repository or (DOCKER_HUB_PROBE if upstream.is_docker_hub else None)
            rate_probe = await _rate_limit(upstream, target) if reachable and target else None
            return UpstreamStatus(
                name=config.name,
                url=config.url,
                prefix=config.prefix,
                reachable=reachable,
                probe=probe,
                ratelimit_limit=upstream.rate_limit.limit,
                ratelimit_remaining=upstream.rate_limit.remaining,
                ratelimit_probe=rate_probe,
                cached_bytes=sizes.get(config.name, 0),
                max_size=int(config.max_size) if config.max_size != "" else None,
            )

        return list(await asyncio.gather(*(one(u) for u in settings.upstreams)))


def _size(n: int) -> str:
    from dockyard.cli_gc import _size as size

    return size(n)


@cache_app.command("status")
def status_command(
    config: ConfigOption = None,
    repository: Annotated[
        str | None,
        typer.Option(
            "--repository",
            help="Upstream repository whose manifest 'latest' is HEADed to read the "
            "rate-limit headers (default: ratelimitpreview/test on Docker Hub, none elsewhere).",
        ),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print a JSON report on stdout.")] = False,
) -> None:
    """Probe each upstream and show its rate limit and the cache's size against max_size."""
    from dockyard.cli import _settings

    settings = _settings(config)
    if not settings.upstreams:
        typer.echo("dockyard: no [[upstreams]] are configured", err=True)
        raise typer.Exit(1)

    from dockyard.app import run_with_registry  # the app pulls in every feature: load late

    report = run_with_registry(settings, lambda registry: _status(settings, repository, registry))
    if json_:
        doc: dict[str, Any] = {"upstreams": [asdict(s) for s in report]}
        typer.echo(json.dumps(doc, indent=2))
    else:
        for s in report:
            typer.echo(f"{s.name}  {s.url}  prefix {s.prefix or '(mirror mode)'}")
            state = "reachable" if s.reachable else "UNREACHABLE"
            typer.echo(f"  upstream:   {state} ({s.probe})")
            if not s.reachable:
                typer.echo(
                    f"  back-off:   a server backs off after {FAILURES_BEFORE_BACKOFF} failures "
                    "in a row like this one"
                )
            if s.ratelimit_limit is not None or s.ratelimit_remaining is not None:
                typer.echo(
                    f"  rate limit: {s.ratelimit_remaining} of {s.ratelimit_limit} remaining"
                )
            elif s.ratelimit_probe is not None:
                typer.echo(f"  rate limit: none sent ({s.ratelimit_probe})")
            limit = _size(s.max_size) if s.max_size is not None else "unbounded"
            used = f" ({100 * s.cached_bytes / s.max_size:.0f}%)" if s.max_size else ""
            typer.echo(f"  cached:     {_size(s.cached_bytes)} of {limit}{used}")
    if not all(s.reachable for s in report):
        raise typer.Exit(1)
