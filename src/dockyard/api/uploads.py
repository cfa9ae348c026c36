"""``/v2/<name>/blobs/uploads/``: monolithic, chunked and streamed uploads, mounts
(spec end-4a, end-4b, end-5, end-6, end-11, end-13, and upload DELETE)."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.base import access, has_body, name, registry, url
from dockyard.api.socketbody import body_chunks
from dockyard.core import BlobInfo, UploadRecord, can_pull


def _created(request: web.Request, repository: str, blob: BlobInfo) -> web.Response:
    return web.Response(
        status=201,
        headers={
            "Location": url(request, f"/v2/{repository}/blobs/{blob.digest}"),
            "Docker-Content-Digest": str(blob.digest),
        },
    )


def _session(request: web.Request, record: UploadRecord, status: int) -> web.Response:
    headers = registry(request).uploads.headers(record)
    headers["Location"] = url(request, headers["Location"])
    return web.Response(status=status, headers=headers)


async def start_upload(request: web.Request) -> web.Response:
    """POST: mount (``?mount=&from=``), whole blob (``?digest=``), or open a session."""
    core = registry(request)
    repository = name(request)
    query = request.query
    if "mount" in query:
        # The source must be one the caller may pull; if not, this is a plain upload.
        blob = await core.blobs.mount(
            repository, query["mount"], query.get("from"), can_pull(access(request))
        )
        if blob is not None:
            return _created(request, repository, blob)
    elif "digest" in query:
        blob = await core.uploads.upload(
            repository, query["digest"], body_chunks(request), request.content_length
        )
        return _created(request, repository, blob)
    record = await core.uploads.start(repository)
    return _session(request, record, 202)


async def upload_status(request: web.Request) -> web.Response:
    """GET: how much of the upload has arrived (204 with ``Range``)."""
    record = await registry(request).uploads.status(name(request), request.match_info["uuid"])
    return _session(request, record, 204)


async def patch_upload(request: web.Request) -> web.Response:
    """PATCH: append one chunk, sized or streamed."""
    record = await registry(request).uploads.append(
        name(request),
        request.match_info["uuid"],
        body_chunks(request),
        request.headers.get("Content-Range"),
        request.content_length,
    )
    return _session(request, record, 202)


async def finish_upload(request: web.Request) -> web.Response:
    """PUT ``?digest=``: close the session, with an optional last chunk."""
    repository = name(request)
    blob = await registry(request).uploads.finish(
        repository,
        request.match_info["uuid"],
        request.query.get("digest"),
        body_chunks(request) if has_body(request) else None,
        request.headers.get("Content-Range"),
        request.content_length,
    )
    return _created(request, repository, blob)


async def cancel_upload(request: web.Request) -> web.Response:
    """DELETE: abandon the session and its bytes."""
    await registry(request).uploads.cancel(name(request), request.match_info["uuid"])
    return web.Response(status=204)
