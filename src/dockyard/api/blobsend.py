"""Blob responses: a local file sent by :mod:`dockyard.api.filesend`, or bytes streamed
from the store, with Range."""

from __future__ import annotations

import contextlib
import re

from aiohttp import web

from dockyard.api.filesend import send_file
from dockyard.core import BlobInfo, CorruptBlob, FileRegion, Registry, open_for_reading
from dockyard.oci import ErrorCode, RegistryError


def blob_headers(blob: BlobInfo) -> dict[str, str]:
    """Headers every blob response carries."""
    return {
        "Docker-Content-Digest": str(blob.digest),
        "ETag": f'"{blob.digest}"',
        "Accept-Ranges": "bytes",
        "Cache-Control": "max-age=31536000, immutable",
    }


_SEVERAL_RANGES = re.compile(r"bytes=\s*\d*-\d*(\s*,\s*\d*-\d*)+\s*")


def _byte_range(request: web.Request, size: int) -> tuple[int, int] | None:
    """(offset, count) asked by a ``Range`` header; None for the whole blob; 416 if bad."""
    if "Range" not in request.headers:
        return None
    if _SEVERAL_RANGES.fullmatch(request.headers["Range"]):
        return None  # RFC 9110 lets a server ignore Range: the whole blob, not multipart
    unsatisfiable = RegistryError(
        ErrorCode.RANGE_INVALID,
        f"Range {request.headers['Range'][:100]!r} cannot be served from a {size}-byte blob",
        headers={"Content-Range": f"bytes */{size}"},
    )
    try:
        rng = request.http_range
    except ValueError:
        raise unsatisfiable from None
    start, stop = rng.start, rng.stop
    if start is None:
        return None
    if start < 0 and stop is None:  # suffix range: the last -start bytes
        start = max(size + start, 0)
        stop = size
    stop = size if stop is None else min(stop, size)
    if start >= size or stop <= start:
        raise unsatisfiable
    return start, stop - start


async def _send(
    request: web.Request, response: web.StreamResponse, chunk: bytes | FileRegion
) -> None:
    if isinstance(chunk, bytes):
        if chunk:
            await response.write(chunk)
        return
    await send_file(request, chunk.file, chunk.offset, chunk.count, copy=False)


async def send_blob(request: web.Request, core: Registry, blob: BlobInfo) -> web.StreamResponse:
    """Answer GET/HEAD for ``blob``: 200 whole or 206 partial, 304 on a matching ETag."""
    headers = blob_headers(blob)
    if request.if_none_match and any(e.value == str(blob.digest) for e in request.if_none_match):
        return web.Response(status=304, headers=headers)
    byte_range = _byte_range(request, blob.size)
    offset, count = byte_range or (0, blob.size)
    response = web.StreamResponse(status=206 if byte_range else 200, headers=headers)
    response.content_type = "application/octet-stream"
    response.content_length = count
    if byte_range:
        response.headers["Content-Range"] = f"bytes {offset}-{offset + count - 1}/{blob.size}"
    if request.method == "HEAD" or count == 0:
        await response.prepare(request)
        return response
    location = await core.blobs.redirect_url(blob)
    if location is not None:
        # The bytes bypass the replicas; the client repeats its Range to the store.
        return web.Response(status=307, headers={**blob_headers(blob), "Location": location})
    if blob.path is not None:
        try:
            fobj = await open_for_reading(blob.path)
        except FileNotFoundError:
            raise core.blobs.missing(blob) from None
        try:
            await response.prepare(request)
            await send_file(request, fobj, offset, count)
        finally:
            # Closed here, not in a worker thread: closing a read-only file does no I/O,
            # and an awaited close could be cancelled (server shutdown) and leak the file.
            with contextlib.suppress(OSError):
                fobj.close()
        await response.write_eof()
        return response
    stream = core.blobs.read(blob, offset, count)
    try:
        first = await anext(stream, b"")  # errors surface before the status line is sent
        await response.prepare(request)
        await _send(request, response, first)
        async for chunk in stream:
            await _send(request, response, chunk)
    except CorruptBlob as e:
        if not response.prepared:  # a one-chunk blob: nothing is sent yet
            raise RegistryError(
                ErrorCode.BLOB_UNKNOWN,
                "blob content is corrupt in storage and now quarantined",
                detail={"digest": str(e.digest)},
            ) from None
        # Found corrupt on the way out (and quarantined): the status line is sent, so
        # the only honest answer left is a broken transfer, short of its Content-Length.
        # Aborting drops what is still buffered; aiohttp's own write_eof then finds the
        # connection gone and only logs the access.
        if request.transport is not None:
            request.transport.abort()
        return response
    await response.write_eof()
    return response
