"""Fixed-duration loads of small requests at a given concurrency, three ways.

- ``aiohttp``: one ClientSession (one keep-alive connection) per concurrent worker;
- ``asyncio``: a bare asyncio.Protocol per connection that writes one prebuilt request and
  parses only the status line and Content-Length of the answer, far cheaper per request
  than a full client, so that the server and not the client is measured;
- ``wrk``: Debian's C load generator, GET only (wrk 4 waits for a body after a HEAD
  response that announces one, and so never completes a HEAD).

The runner picks, per method, whichever gives the higher numbers (see workloads.py).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from yarl import URL

from bench.client import session
from bench.stats import LoadResult


async def aiohttp_load(
    url: str, method: str, headers: dict[str, str], concurrency: int, seconds: float
) -> LoadResult:
    """``concurrency`` aiohttp workers sending ``method url`` back to back for ``seconds``."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        async with session() as s:
            while (start := time.perf_counter()) < deadline:
                async with s.request(method, url, headers=headers) as r:
                    await r.read()
                    ok = r.status == 200
                if ok:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors += 1

    begin = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return LoadResult.from_latencies("aiohttp", latencies, errors, time.perf_counter() - begin)


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection answering one request at a time."""

    def __init__(self, head: bool) -> None:
        self._head = head
        self._buffer = bytearray()
        self._waiter: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self, request: bytes) -> asyncio.Future[int]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self._waiter

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self._buffer[:end]).lower()
        status = int(head[9:12])
        length = 0
        if not self._head:
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                length = int(head[at + 17 : head.find(b"\r\n", at + 2)].strip() or b"0")
        if len(self._buffer) < end + 4 + length:
            return
        del self._buffer[: end + 4 + length]
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc or ConnectionResetError("server closed"))


async def asyncio_load(
    url: str, method: str, headers: dict[str, str], concurrency: int, seconds: float
) -> LoadResult:
    """Like :func:`aiohttp_load`, with the bare protocol above."""
    target = URL(url)
    lines = [f"{method} {target.raw_path_qs} HTTP/1.1", f"Host: {target.raw_authority}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        assert target.host is not None
        assert target.port is not None
        transport, conn = await loop.create_connection(
            lambda: _Connection(method == "HEAD"), target.host, target.port
        )
        try:
            while (start := time.perf_counter()) < deadline:
                status = await conn.send(request)
                if status == 200:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors += 1
        finally:
            transport.close()

    begin = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return LoadResult.from_latencies("asyncio", latencies, errors, time.perf_counter() - begin)


_WRK_SCRIPT = """\
wrk.method = "{method}"
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {{"requests": %d, "us": %d, "p50_us": %d, "p99_us": %d, "errors": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def wrk_available() -> bool:
    """Whether Debian's ``wrk`` is installed."""
    return shutil.which("wrk") is not None


async def wrk_load(
    url: str, method: str, headers: dict[str, str], concurrency: int, seconds: float
) -> LoadResult:
    """``wrk -t1 -c<concurrency> -d<seconds>``: one thread leaves the other core to the server."""
    if method == "HEAD":
        raise ValueError("wrk cannot load HEAD requests that announce a body")
    header_lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script = Path(tmp) / "load.lua"
        script.write_text(_WRK_SCRIPT.format(method=method, headers=header_lines))
        cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(seconds, 1):.0f}s", "-s", str(script)]
        proc = await asyncio.create_subprocess_exec(
            *cmd, url, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        out, err = await proc.communicate()
    for line in out.decode().splitlines():
        if line.startswith("BENCH "):
            doc = json.loads(line[6:])
            seconds_run = doc["us"] / 1e6
            return LoadResult(
                "wrk",
                int(doc["requests"]) - int(doc["errors"]),
                int(doc["errors"]),
                seconds_run,
                doc["p50_us"] / 1000,
                doc["p99_us"] / 1000,
            )
    raise RuntimeError(f"wrk printed no result: {out.decode()[-500:]} {err.decode()[-500:]}")


LOADERS = {"aiohttp": aiohttp_load, "asyncio": asyncio_load, "wrk": wrk_load}


def tools_for(method: str) -> list[str]:
    """The load generators that can drive ``method`` on this machine."""
    tools = ["asyncio", "aiohttp"]
    if method != "HEAD" and wrk_available():
        tools.append("wrk")
    return tools
