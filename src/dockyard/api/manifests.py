"""``/v2/<name>/manifests/<reference>``: pull, push and delete manifests (end-3, 7, 9)."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.base import name, read_limited, registry, url


async def get_manifest(request: web.Request) -> web.Response:
    """GET/HEAD by tag or digest: the exact bytes pushed, with their media type."""
    record = await registry(request).manifests.get(name(request), request.match_info["reference"])
    return web.Response(
        body=record.content,
        headers={
            "Content-Type": record.media_type,
            "Docker-Content-Digest": record.digest,
            "ETag": f'"{record.digest}"',
        },
    )


async def put_manifest(request: web.Request) -> web.Response:
    """PUT by tag or digest (``?tag=`` adds tags): 201 with the digest, OCI-Subject."""
    core = registry(request)
    repository = name(request)
    data = await read_limited(request, core.manifests.max_size)
    result = await core.manifests.put(
        repository,
        request.match_info["reference"],
        data,
        request.headers.get("Content-Type"),
        request.query.getall("tag", []),
    )
    headers = {
        "Location": url(request, f"/v2/{repository}/manifests/{result.digest}"),
        "Docker-Content-Digest": str(result.digest),
    }
    if result.subject is not None:
        headers["OCI-Subject"] = str(result.subject)
    response = web.Response(status=201, headers=headers)
    for tag in result.tags:
        response.headers.add("OCI-Tag", tag)
    return response


async def delete_manifest(request: web.Request) -> web.Response:
    """DELETE by digest (manifest and its tags) or by tag (the tag only): 202."""
    await registry(request).manifests.delete(name(request), request.match_info["reference"])
    return web.Response(status=202)
