"""Large upload bodies read straight off the socket (``dockyard.api.socketbody``).

On the embedded stack (filesystem store) a sized body of at least ``DIRECT_MIN`` bytes
is received, hashed and written by one worker thread; on S3 the same requests go the
usual way. Either way the connection carries on with the next request, the bytes stored
are the bytes sent, and a body cut off, mistyped or slow loses nothing. Only a body not
read to its end (the sink failed, the drain was cancelled) closes the connection.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable

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
    answer = await _answer(reader)
    writer.close()
    await writer.wait_closed()
    return answer


async def _answer(reader: asyncio.StreamReader) -> bytes:
    """One HTTP answer (head and body) off ``reader``; what came if it closed first."""
    try:
        answer = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        return e.partial  # closed without an answer
    length = re.search(rb"\r\nContent-Length: (\d+)\r\n", answer, re.I)
    return answer + await reader.readexactly(int(length.group(1)) if length else 0)


def _status(answer: bytes) -> int:
    return int(answer.split(maxsplit=2)[1])


def _closes(answer: bytes) -> bool:
    return b"\r\nconnection: close\r\n" in answer.lower()


def _request(method: str, target: str, host: str, body: bytes = b"", **headers: str) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def test_a_large_put_is_stored_whole(registry: Client, stack: str) -> None:
    before = await _direct_count(registry)
    location = await start_upload(registry, REPO)
    digest = sha256(BIG)
    r = await registry.put(with_query(location, digest=digest), data=io.BytesIO(BIG))
    assert r.status == 201, await r.text()
    assert r.headers["Docker-Content-Digest"] == digest
    assert "Connection" not in r.headers
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


async def test_large_chunks_continue_one_another_on_one_connection(registry: Client) -> None:
    """Each chunk is read off the socket; the connection then carries the next request:
    a chunk, a closing PUT, and a GET the client sends before the PUT's answer."""
    data = BIG + os.urandom(DIRECT_MIN + 77) + os.urandom(DIRECT_MIN + (1 << 20))
    cuts = [0, len(BIG), len(data) - DIRECT_MIN - (1 << 20), len(data)]
    location = await start_upload(registry, REPO)
    reader, writer = await asyncio.open_connection(registry.host, registry.port)
    host = registry.host
    try:
        for start, end in itertools.pairwise(cuts):
            range_ = f"{start}-{end - 1}"
            writer.write(_request("PATCH", location, host, data[start:end], Content_Range=range_))
            answer = await _answer(reader)
            assert _status(answer) == 202, answer
            assert f"\r\nRange: 0-{end - 1}\r\n".encode() in answer
            assert not _closes(answer)
            match = re.search(rb"\r\nLocation: (\S+)\r\n", answer)
            assert match
            location = match.group(1).decode()
        # Pipelined: the GET is on the wire behind the PUT before the PUT is answered.
        digest = sha256(data)
        writer.write(
            _request("PUT", with_query(location, digest=digest), host)
            + _request("GET", f"/v2/{REPO}/blobs/{digest}", host)
        )
        put, get = await _answer(reader), await _answer(reader)
    finally:
        writer.close()
        await writer.wait_closed()
    assert _status(put) == 201, put
    assert _status(get) == 200, get[:200]
    assert get.endswith(data)
    assert await _fetch(registry, digest) == data


async def test_a_request_pipelined_behind_a_large_body_is_answered(registry: Client) -> None:
    """Bytes sent behind the body belong to the next request: none is lost or eaten."""
    location = await start_upload(registry, REPO)
    reader, writer = await asyncio.open_connection(registry.host, registry.port)
    host = registry.host
    writer.write(
        _request("PUT", with_query(location, digest=sha256(BIG)), host, BIG)
        + _request("GET", "/v2/", host)
        + _request("HEAD", f"/v2/{REPO}/blobs/{sha256(BIG)}", host)
    )
    try:
        put = await _answer(reader)
        base = await _answer(reader)
        head = await reader.readuntil(b"\r\n\r\n")  # a HEAD answer has no body
    finally:
        writer.close()
        await writer.wait_closed()
    assert (_status(put), _status(base), _status(head)) == (201, 200, 200), (put, base, head)
    assert f"\r\nContent-Length: {len(BIG)}\r\n".encode() in head
    assert not _closes(put)


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
    assert not _closes(b"\r\n" + rest)
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
    assert not _closes(answer)
    assert await _fetch(registry, sha256(BIG)) == BIG


class _Sink:
    """A sink that records what it is handed; ``fail_after`` bytes make it raise, and it
    says not yet to its first ``not_ready`` begins."""

    def __init__(self, *, fail_after: int | None = None, not_ready: int = 0) -> None:
        self.lock = threading.Lock()
        self.pieces: list[int] = []
        self.data = bytearray()
        self.ended = False
        self._fail_after = fail_after
        self._not_ready = not_ready

    def begin(self) -> bool:
        if self._not_ready:
            self._not_ready -= 1
            return False
        return True

    def __call__(self, piece: memoryview) -> None:
        with self.lock:
            self.pieces.append(len(piece))
            self.data += piece
        if self._fail_after is not None and len(self.data) > self._fail_after:
            raise OSError("disk full")

    def end(self) -> None:
        self.ended = True

    def count(self) -> int:
        with self.lock:
            return len(self.pieces)


async def _next(_: web.Request) -> web.Response:
    return web.Response(text="next")


def _serve_drain(
    handler: Callable[[web.Request], Awaitable[web.Response]],
) -> web.Application:
    app = web.Application()
    app.router.add_put("/", handler)
    app.router.add_get("/", _next)
    app.on_response_prepare.append(_close_if_taken)
    return app


async def _big_put_then_get(app: web.Application) -> tuple[bytes, bytes]:
    """``PUT /`` with ``BIG`` and a ``GET /`` pipelined behind it, on one connection:
    both answers."""
    async with TestClient(TestServer(app)) as client:
        reader, writer = await asyncio.open_connection(client.host, client.port)
        writer.write(_request("PUT", "/", client.host, BIG) + _request("GET", "/", client.host))
        try:
            return await _answer(reader), await _answer(reader)
        finally:
            writer.close()
            await writer.wait_closed()


def _drain_of(request: web.Request) -> Callable[[_Sink], Awaitable[int | None]]:
    body = body_chunks(request)
    drain = getattr(body, "drain_into", None)
    assert drain is not None, "a large sized body should be offered for draining"
    return drain  # type: ignore[no-any-return]


async def test_a_cancelled_drain_stops_handing_out_pieces() -> None:
    """Cancelling ``drain_into`` (a client timeout, a shutdown) returns only once the
    thread has stopped: the sink is never called afterwards. The body was not read to
    its end, so the answer closes the connection."""
    sink = _Sink()
    outcome: dict[str, object] = {}

    async def handler(request: web.Request) -> web.Response:
        drain = _drain_of(request)
        try:
            await asyncio.wait_for(drain(sink), 0.3)
        except TimeoutError:
            outcome["at_cancel"] = sink.count()
            await asyncio.sleep(0.3)
            outcome["later"] = sink.count()
        return web.Response(text="stopped")

    async with TestClient(TestServer(_serve_drain(handler))) as client:
        answer = await _raw_put(client, "/", BIG, send=2 << 20, hang_up=False)
    assert b"stopped" in answer
    assert _closes(answer)
    assert outcome["at_cancel"] == outcome["later"]
    assert sum(sink.pieces) <= 2 << 20
    assert not sink.ended


async def test_a_failing_sink_gets_its_answer_to_the_client() -> None:
    """The rest of the body is read and dropped: the client, still sending, reads the
    error rather than a reset, and the connection carries on."""
    sink = _Sink(fail_after=1 << 20)

    async def handler(request: web.Request) -> web.Response:
        drain = _drain_of(request)
        try:
            await drain(sink)
        except OSError as e:
            return web.Response(status=507, text=str(e))
        raise AssertionError("the sink's error should propagate")

    answer, following = await _big_put_then_get(_serve_drain(handler))
    assert _status(answer) == 507
    assert b"disk full" in answer
    assert not _closes(answer)
    assert following.endswith(b"next")
    assert not sink.ended
    assert len(sink.data) < len(BIG)


async def test_a_sink_not_ready_is_drained_again_from_the_start() -> None:
    """``begin()`` saying not yet leaves the body unread: the next drain hands over all
    of it, aiohttp's buffered head first, and the connection then carries on."""
    sink = _Sink(not_ready=1)
    results: list[int | None] = []

    async def handler(request: web.Request) -> web.Response:
        drain = _drain_of(request)
        results.append(await drain(sink))
        await asyncio.sleep(0.05)
        results.append(await drain(sink))
        return web.Response(text="drained")

    put, following = await _big_put_then_get(_serve_drain(handler))
    assert results == [None, len(BIG)]
    assert bytes(sink.data) == BIG
    assert sink.ended
    assert not _closes(put)
    assert following.endswith(b"next")


async def _close_if_taken(request: web.BaseRequest, response: web.StreamResponse) -> None:
    close_if_taken(request, response)
