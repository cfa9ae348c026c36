"""Large upload bodies read straight off the socket (``dockyard.api.socketbody``).

On the embedded stack (filesystem store) a sized body of at least ``DIRECT_MIN`` bytes
is received, hashed and written by one worker thread, and the answer closes the
connection; on S3 the same requests go the usual way and keep it. Either way the bytes
stored are the bytes sent, and a body cut off, mistyped or slow loses nothing.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import re
import threading
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from dockyard.api.socketbody import DIRECT_MIN, body_chunks, close_if_taken
from tests.helpers import Client, assert_error, open_uploads, sha256, start_upload, with_query

REPO = "direct/demo"
BIG = os.urandom(DIRECT_MIN + (3 << 20) + 123)  # over the threshold, not a round size


def _taken(stack: str) -> bool:
    return stack == "embedded"


async def _fetch(client: Client, digest: str) -> bytes:
    r = await client.get(f"/v2/{REPO}/blobs/{digest}")
    assert r.status == 200, await r.text()
    return await r.read()


async def _direct_count(client: Client) -> float:
    r = await client.get("/metrics")
    text = await r.text()
    match = re.search(r"^dockyard_http_request_bodies_direct_total (\S+)$", text, re.M)
    assert match, text
    return float(match.group(1))


async def _raw_put(
    client: Client,
    target: str,
    body: bytes,
    *,
    send: int | None = None,
    hang_up: bool = True,
    pauses: int = 0,
) -> bytes:
    """PUT ``body`` over a socket of its own: ``send`` bytes of it, then hang up (or wait
    with ``hang_up=False``); or all of it in ``pauses + 1`` parts with 0.1 s between
    them. Returns the server's answer, empty if it hung up without one."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    head = (
        f"PUT {target} HTTP/1.1\r\nHost: {client.host}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode())
    sent = body if send is None else body[:send]
    step = -(-len(sent) // (pauses + 1))
    for start in range(0, len(sent), step):
        writer.write(sent[start : start + step])
        await writer.drain()
        if pauses:
            await asyncio.sleep(0.1)
    if send is not None and hang_up:
        writer.write_eof()
    try:
        answer = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        answer = e.partial  # closed without an answer
    else:
        length = re.search(rb"\r\nContent-Length: (\d+)\r\n", answer, re.I)
        answer += await reader.readexactly(int(length.group(1)) if length else 0)
    writer.close()
    await writer.wait_closed()
    return answer


async def test_a_large_put_is_stored_whole_and_closes_the_connection(
    registry: Client, stack: str
) -> None:
    before = await _direct_count(registry)
    location = await start_upload(registry, REPO)
    digest = sha256(BIG)
    r = await registry.put(with_query(location, digest=digest), data=io.BytesIO(BIG))
    assert r.status == 201, await r.text()
    assert r.headers["Docker-Content-Digest"] == digest
    assert (r.headers.get("Connection") == "close") is _taken(stack)
    assert await _fetch(registry, digest) == BIG
    assert await _direct_count(registry) == before + _taken(stack)
    # The request metrics count the whole body, however it was read.
    text = await (await registry.get("/metrics")).text()
    received = re.search(
        r'^dockyard_http_request_body_bytes_total\{group="uploads"\} (\S+)$', text, re.M
    )
    assert received
    assert float(received.group(1)) >= len(BIG)


async def test_a_body_under_the_threshold_keeps_the_connection(registry: Client) -> None:
    data = os.urandom(DIRECT_MIN - 1)
    location = await start_upload(registry, REPO)
    r = await registry.put(with_query(location, digest=sha256(data)), data=io.BytesIO(data))
    assert r.status == 201, await r.text()
    assert "Connection" not in r.headers
    assert await _fetch(registry, sha256(data)) == data


async def test_a_streamed_body_goes_the_usual_way(registry: Client) -> None:
    async def parts() -> AsyncIterator[bytes]:
        for start in range(0, len(BIG), 1 << 20):
            yield BIG[start : start + (1 << 20)]

    location = await start_upload(registry, REPO)
    r = await registry.put(with_query(location, digest=sha256(BIG)), data=parts())
    assert r.status == 201, await r.text()
    assert "Connection" not in r.headers
    assert await _fetch(registry, sha256(BIG)) == BIG


async def test_large_chunks_continue_one_another(registry: Client, stack: str) -> None:
    data = BIG + os.urandom(DIRECT_MIN + 77) + os.urandom(DIRECT_MIN + (1 << 20))
    cuts = [0, len(BIG), len(data) - DIRECT_MIN - (1 << 20), len(data)]
    location = await start_upload(registry, REPO)
    for start, end in itertools.pairwise(cuts):
        r = await registry.patch(
            location,
            data=io.BytesIO(data[start:end]),
            headers={"Content-Range": f"{start}-{end - 1}"},
        )
        assert r.status == 202, await r.text()
        assert r.headers["Range"] == f"0-{end - 1}"
        assert (r.headers.get("Connection") == "close") is _taken(stack)
        location = r.headers["Location"]
    r = await registry.put(with_query(location, digest=sha256(data)))
    assert r.status == 201, await r.text()
    assert await _fetch(registry, sha256(data)) == data


async def test_a_wrong_digest_publishes_nothing(registry: Client) -> None:
    location = await start_upload(registry, REPO)
    claimed = sha256(b"something else")
    r = await registry.put(with_query(location, digest=claimed), data=io.BytesIO(BIG))
    await assert_error(r, 400, "DIGEST_INVALID")
    for digest in (claimed, sha256(BIG)):
        r = await registry.head(f"/v2/{REPO}/blobs/{digest}")
        assert r.status == 404
    assert await open_uploads(registry) == 0


async def test_a_body_cut_off_publishes_nothing_and_the_client_resumes(registry: Client) -> None:
    location = await start_upload(registry, REPO)
    head = BIG[: 1 << 20]
    r = await registry.patch(
        location, data=io.BytesIO(head), headers={"Content-Range": f"0-{len(head) - 1}"}
    )
    assert r.status == 202
    location = r.headers["Location"]
    rest = BIG[len(head) :]
    # The closing PUT announces the rest; the client hangs up well into it.
    answer = await _raw_put(registry, with_query(location, digest=sha256(BIG)), rest, send=3 << 20)
    assert answer == b""
    r = await registry.head(f"/v2/{REPO}/blobs/{sha256(BIG)}")
    assert r.status == 404
    r = await registry.get(location)
    assert r.status == 204
    assert r.headers["Range"] == f"0-{len(head) - 1}"
    r = await registry.put(with_query(location, digest=sha256(BIG)), data=io.BytesIO(rest))
    assert r.status == 201, await r.text()
    assert await _fetch(registry, sha256(BIG)) == BIG


async def test_a_slow_sender_is_waited_for(registry: Client, stack: str) -> None:
    location = await start_upload(registry, REPO)
    # Pauses longer than the reading thread waits, so the event loop takes over the wait.
    answer = await _raw_put(registry, with_query(location, digest=sha256(BIG)), BIG, pauses=4)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"201", answer
    assert (b"\r\nConnection: close\r\n" in b"\r\n" + rest) is _taken(stack)
    assert await _fetch(registry, sha256(BIG)) == BIG


async def test_a_client_expecting_100_continue(registry: Client, stack: str) -> None:
    """curl sends large bodies only after ``100 Continue``; nothing of it is read early."""
    location = await start_upload(registry, REPO)
    reader, writer = await asyncio.open_connection(registry.host, registry.port)
    target = with_query(location, digest=sha256(BIG))
    writer.write(
        f"PUT {target} HTTP/1.1\r\nHost: {registry.host}\r\nExpect: 100-continue\r\n"
        f"Content-Length: {len(BIG)}\r\n\r\n".encode()
    )
    await writer.drain()
    interim = await reader.readuntil(b"\r\n\r\n")
    assert interim.startswith(b"HTTP/1.1 100 "), interim
    writer.write(BIG)
    await writer.drain()
    answer = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    await writer.wait_closed()
    assert answer.split()[1] == b"201", answer
    assert (b"\r\nConnection: close\r\n" in answer) is _taken(stack)
    assert await _fetch(registry, sha256(BIG)) == BIG


async def test_a_cancelled_drain_stops_handing_out_pieces() -> None:
    """Cancelling ``drain_into`` (a client timeout, a shutdown) returns only once the
    thread has stopped: the sink is never called afterwards."""
    calls: list[int] = []
    outcome: dict[str, object] = {}
    lock = threading.Lock()

    def sink(piece: memoryview) -> None:
        with lock:
            calls.append(len(piece))

    async def handler(request: web.Request) -> web.Response:
        body = body_chunks(request)
        drain = getattr(body, "drain_into", None)
        assert drain is not None, "a large sized body should be offered for draining"
        try:
            await asyncio.wait_for(drain(sink), 0.3)
        except TimeoutError:
            with lock:
                outcome["at_cancel"] = len(calls)
            await asyncio.sleep(0.3)
            with lock:
                outcome["later"] = len(calls)
        return web.Response(text="stopped")

    app = web.Application()
    app.router.add_put("/", handler)
    app.on_response_prepare.append(_close_if_taken)
    async with TestClient(TestServer(app)) as client:
        answer = await _raw_put(client, "/", BIG, send=2 << 20, hang_up=False)
    assert b"stopped" in answer
    assert outcome["at_cancel"] == outcome["later"]
    assert sum(calls) <= 2 << 20


async def _close_if_taken(request: web.BaseRequest, response: web.StreamResponse) -> None:
    close_if_taken(request, response)
