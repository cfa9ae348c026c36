"""A TCP pass-through in front of an upstream, in the test's loop, that can hold a
response mid-way: the upstream is then stuck writing a blob, and a test can kill it
there, really mid-blob, however fast loopback is.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

_READ = 64 * 1024


@dataclass
class Passthrough:
    """Forwards ``127.0.0.1:<port>`` to ``target`` (``host:port``), both ways."""

    target: str
    # Stop forwarding the upstream's answer on a connection after this many bytes, until
    # ``release`` is set (``holding`` is set then). None: never hold.
    hold_after: int | None = None
    holding: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = self.target.rsplit(":", 1)
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.close()
            return
        tasks = [
            asyncio.create_task(self._pump(reader, up_writer, hold=False)),
            asyncio.create_task(self._pump(up_reader, writer, hold=True)),
        ]
        self._tasks.update(tasks)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks.difference_update(tasks)
            for w in (writer, up_writer):
                w.close()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, hold: bool
    ) -> None:
        forwarded = 0
        with contextlib.suppress(OSError):
            while data := await reader.read(_READ):
                if hold and self.hold_after is not None and forwarded >= self.hold_after:
                    self.holding.set()
                    await self.release.wait()
                writer.write(data)
                await writer.drain()
                forwarded += len(data)
