"""Running the application: bind, log the address, serve; optionally several workers.

Workers are processes that each listen on the same port with ``SO_REUSEPORT``, so the
kernel spreads connections across them. The parent binds first (so ``--port 0`` picks
one port for all), migrates the schema once, then forks the workers and waits.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import ssl
from typing import Any

from aiohttp import web

from dockyard import auth, logs, metadata
from dockyard.config import Settings

log = logging.getLogger("dockyard")

_BACKLOG = 1024


def _listen_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    # Listen now, before the app starts: the "listening" log line is then true, and a
    # client that connects on seeing it waits in the backlog instead of being refused.
    sock.listen(_BACKLOG)
    sock.setblocking(False)
    return sock


async def _serve(settings: Settings, sock: socket.socket) -> None:
    # Imported here, not at the top: the metrics library must see PROMETHEUS_MULTIPROC_DIR,
    # which serve() sets before the first import when there are several workers.
    from dockyard.app import build_app

    app = build_app(settings)
    runner = web.AppRunner(app, access_log_class=logs.AccessLogger, handle_signals=False)
    await runner.setup()
    site = web.SockSite(runner, sock, backlog=_BACKLOG, ssl_context=tls_context(settings))
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        logs.flush_access_log()


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server's TLS context when ``tls_cert`` and ``tls_key`` are set, else None.

    Raises SystemExit naming the file when the certificate or key cannot be loaded.
    """
    cert, key = settings.server.tls_cert, settings.server.tls_key
    if not cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise SystemExit(f"dockyard: cannot load TLS certificate {cert} / key {key}: {e}") from None
    return context


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _warn_if_exposed(settings: Settings, host: str, tls: bool) -> None:
    """Say loudly when anyone on the network may push, or may read passwords."""
    if _is_loopback(host):
        return
    if settings.auth.mode == "none":
        log.warning(
            'listening on %s WITHOUT AUTHENTICATION ([auth] mode = "none"): anyone who '
            "can reach it may push and delete; see docs/security.md",
            host,
        )
    elif not tls:
        log.warning(
            "listening on %s over plain HTTP: passwords and tokens cross the network "
            "in clear; set tls_cert/tls_key or terminate TLS in front",
            host,
        )


def _run_worker(settings: Settings, sock: socket.socket) -> None:
    logs.configure(settings.server.log_format)
    _run(_serve(settings, sock))


def _run(coro: Any) -> None:
    # The stock asyncio loop, not uvloop: uvloop has no loop.sendfile, and zero-copy
    # blob pulls matter more here than its faster small-request path.
    asyncio.run(coro)


async def _migrate(settings: Settings) -> None:
    """Upgrade embedded SQLite; on PostgreSQL only check, and refuse a foreign schema."""
    settings.server.data_dir.mkdir(parents=True, exist_ok=True)
    engine = metadata.create_engine(
        settings.metadata_url, 1, statement_timeout=settings.metadata.statement_timeout
    )
    try:
        if metadata.is_postgresql(settings.metadata_url):
            await metadata.check(engine)
        else:
            await metadata.upgrade(engine)
    except metadata.SchemaMismatch as e:
        raise SystemExit(f"dockyard: {e}") from None
    finally:
        await engine.dispose()


def _metrics_dir(settings: Settings) -> None:
    """A fresh directory where every worker writes its Prometheus samples."""
    path = settings.server.data_dir / "metrics"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)


def serve(settings: Settings) -> None:
    """Run Dockyard until SIGINT/SIGTERM, with ``settings.server.workers`` processes."""
    logs.configure(settings.server.log_format)
    asyncio.run(_migrate(settings))
    workers = settings.server.workers
    host, port = settings.server.host, settings.server.port
    first = _listen_socket(host, port, reuse_port=workers > 1)
    port = first.getsockname()[1]
    tls = tls_context(settings) is not None  # fails here, once, on a bad certificate
    try:
        auth.preflight(settings)
    except (ValueError, OSError) as e:
        raise SystemExit(f"dockyard: {e}") from None
    _warn_if_exposed(settings, host, tls)
    log.info(
        "dockyard listening on %s://%s:%d (%d worker%s)",
        "https" if tls else "http",
        host,
        port,
        workers,
        "s" * (workers > 1),
    )
    if workers == 1:
        _run(_serve(settings, first))
        return
    _metrics_dir(settings)
    context = multiprocessing.get_context("fork")
    procs = []
    for i in range(workers):
        sock = first if i == 0 else _listen_socket(host, port, reuse_port=True)
        proc = context.Process(
            target=_run_worker, args=(settings, sock), name=f"dockyard-worker-{i}"
        )
        proc.start()
        procs.append(proc)
        if i:
            sock.close()
    first.close()

    def _stop(_sig: int, _frame: Any) -> None:
        for proc in procs:
            if proc.pid:
                os.kill(proc.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    for proc in procs:
        proc.join()
