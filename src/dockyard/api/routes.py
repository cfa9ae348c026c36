"""The URL layout of the v2 API (spec.md, "Endpoints"), wired to the handlers.

Repository names contain slashes, so each route matches the name greedily and the
resource suffix after it; the core validates the name (NAME_INVALID), never the router.
More specific routes (uploads) come before the ones they would otherwise shadow.
"""

from __future__ import annotations

from aiohttp import web

from dockyard.api import blobs, catalog, manifests, referrers, tags, uploads
from dockyard.api.base import version_check

NAME = "{name:.+}"


def add_routes(app: web.Application) -> None:
    """Register every v2 endpoint on ``app``."""
    r = app.router
    r.add_get("/v2/", version_check)
    r.add_get("/v2", version_check)
    r.add_get("/v2/_catalog", catalog.catalog)
    r.add_post(f"/v2/{NAME}/blobs/uploads/", uploads.start_upload)
    r.add_post(f"/v2/{NAME}/blobs/uploads", uploads.start_upload)
    upload = f"/v2/{NAME}/blobs/uploads/{{uuid}}"
    r.add_get(upload, uploads.upload_status)
    r.add_patch(upload, uploads.patch_upload)
    r.add_put(upload, uploads.finish_upload)
    r.add_delete(upload, uploads.cancel_upload)
    blob = f"/v2/{NAME}/blobs/{{digest}}"
    r.add_get(blob, blobs.get_blob)
    r.add_delete(blob, blobs.delete_blob)
    manifest = f"/v2/{NAME}/manifests/{{reference}}"
    r.add_get(manifest, manifests.get_manifest)
    r.add_put(manifest, manifests.put_manifest)
    r.add_delete(manifest, manifests.delete_manifest)
    r.add_get(f"/v2/{NAME}/tags/list", tags.list_tags)
    r.add_get(f"/v2/{NAME}/referrers/{{digest}}", referrers.list_referrers)
