"""``/v2/<name>/referrers/<digest>``: manifests whose subject is a digest (end-12a/b)."""

from __future__ import annotations

import json

from aiohttp import web

from dockyard.api.base import name, registry
from dockyard.oci import mediatypes


async def list_referrers(request: web.Request) -> web.Response:
    """GET: an OCI image index of referrers, filtered by ``artifactType`` when asked."""
    artifact_type = request.query.get("artifactType") or None
    descriptors = await registry(request).manifests.referrers(
        name(request), request.match_info["digest"], artifact_type
    )
    index = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_INDEX,
        "manifests": [d.to_json() for d in descriptors],
    }
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
    return web.Response(
        body=json.dumps(index).encode(), content_type=mediatypes.OCI_INDEX, headers=headers
    )
