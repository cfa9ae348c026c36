"""Running the application: bind, log the address, serve; optionally several workers.

Workers are processes that each listen on the same port with ``SO_REUSEPORT``, so the
kernel spreads connections across them. The parent binds first (so ``--port 0`` picks
one port for all), migrates the schema once, then forks the workers and waits.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import shutil
import signal
import socket
from typing import Any

from aiohttp import web

from dockyard import logs, metadata
from dockyard.config import Settings

log = logging.getLogger("dockyard")


def _listen_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


async def _serve(settings: Settings, sock: socket.socket) -> None:
    # Imported here, not at the top: the metrics library must see PROMETHEUS_MULTIPROC_DIR,
    # which serve() sets before the first import when there are several workers.
    from dockyard.app import build_app

    app = build_app(settings)
    runner = web.AppRunner(app, access_log_class=logs.AccessLogger, handle_signals=False)
    await runner.setup()
    site = web.SockSite(runner, sock, backlog=1024)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def _run_worker(settings: Settings, sock: socket.socket) -> None:
    logs.configure(settings.server.log_format)
    _run(_serve(settings, sock))


def _run(coro: Any) -> None:
    # The stock asyncio loop, not uvloop: uvloop has no loop.sendfile, and zero-copy
    # blob pulls matter more here than its faster small-request path.
    asyncio.run(coro)


async def _migrate(settings: Settings) -> None:
    settings.server.data_dir.mkdir(parents=True, exist_ok=True)
    engine = metadata.create_engine(settings.metadata_url, 1)
    try:
        await metadata.upgrade(engine)
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
    if host not in ("127.0.0.1", "::1", "localhost"):
        log.warning(
            "listening on %s without authentication: anyone who can reach it may push", host
        )
    log.info(
        "dockyard listening on http://%s:%d (%d worker%s)", host, port, workers, "s" * (workers > 1)
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
